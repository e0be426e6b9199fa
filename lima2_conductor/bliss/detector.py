"""The detector side of the Bliss object, as Bliss's Lima2 controller has it:
``det.detector`` (the detector plugin's settings), ``det.det_info``, ``det.det_status``,
``det.det_capabilities``, ``det.masterfile_metadata`` and ``edit_roi_counters(det)``;
and what they add to every Prepare (the plugin's ``control`` part, the master file's
``masterfile_metadata``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import tango
from bliss.common.capabilities import Capability, EditRoisCapability
from bliss.common.utils import autocomplete_property

from ..core.params import deep_merge
from .client import ConductorClient, devfailed_text
from .detectors import DetectorPlugin, load_plugin
from .metadata import MasterfileMetadata, masterfile_metadata
from .roi_editor import ConductorEditRois

logger = logging.getLogger(__name__)


class DetectorMixin:
    """Mixed into the controller, which calls :meth:`_init_detector` from its ``__init__``."""

    if TYPE_CHECKING:
        client: ConductorClient

        @property
        def name(self) -> str: ...

        def cached_value(self, name: str, default: Any = None) -> Any: ...

    def _init_detector(self) -> None:
        self._detector_plugin: DetectorPlugin | None = None
        self._control_schema: dict[str, Any] = {}
        self._masterfile_metadata = MasterfileMetadata(f"lima2_conductor:{self.name}:masterfile_metadata")
        self.client.complete_params = self.complete_params

    # -- what the detector says of itself ------------------------------------------------
    @property
    def det_info(self) -> dict[str, Any]:
        """The detector's description (plugin, model, serial number, dimensions...)."""
        return dict(self.client.read_json("det_info"))

    @property
    def det_status(self) -> dict[str, Any]:
        """The detector's runtime status (temperature, humidity, state...)."""
        return dict(self.client.read_json("det_status"))

    @property
    def det_capabilities(self) -> dict[str, Any]:
        """Trigger modes, exposure and latency ranges (ns), pixel types."""
        return dict(self.client.read_json("det_capabilities"))

    # -- det.detector --------------------------------------------------------------------
    def control_schema(self) -> dict[str, Any]:
        """The conductor's control params schema (``{}`` while it cannot be read)."""
        if not self._control_schema:
            try:
                self._control_schema = json.loads(self.client.proxy.ParamsSchema()).get("control", {})
            except (tango.DevFailed, ValueError) as exc:
                logger.warning("%s: no control params schema: %s", self.name, exc)
        return self._control_schema

    @autocomplete_property
    def detector(self) -> DetectorPlugin:
        """The detector plugin chosen by det_info's ``plugin`` (its settings, kept in Beacon
        and sent with every Prepare)."""
        if self._detector_plugin is None:
            plugin = str(self.cached_value("det_plugin", "") or "")
            if not plugin:  # the cached value may predate the conductor's first read
                try:
                    plugin = str(self.det_info.get("plugin", ""))
                except tango.DevFailed:
                    plugin = ""
            if not plugin:
                raise RuntimeError(
                    f"{self.name}: the conductor {self.client.name} does not name its detector plugin"
                    " (unreachable, or the control device not read yet): det.detector is chosen by it"
                )
            key = f"lima2_conductor:{self.name}:detector:{plugin.lower()}"
            self._detector_plugin = load_plugin(plugin, key, self.control_schema)
        return self._detector_plugin

    # -- det.masterfile_metadata ---------------------------------------------------------
    @autocomplete_property
    def masterfile_metadata(self) -> MasterfileMetadata:
        """``extended_det_info`` and ``user_defined_det_info``: the master file's det_info."""
        return self._masterfile_metadata

    def masterfile_params(self) -> dict[str, Any] | None:
        """Prepare's ``masterfile_metadata`` (None: the conductor's det_info as it is)."""
        meta = self._masterfile_metadata
        extended, user = bool(meta.extended_det_info), dict(meta.user_defined_det_info)
        if not extended and not user:
            return None
        extra = self.detector.additional_det_info() if extended else {}
        return masterfile_metadata(self.det_info, extended, extra, user)

    # -- every Prepare ---------------------------------------------------------------------
    def complete_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """A scan's Prepare params plus the detector plugin's control part (under the
        scan's own control values) and the master file's metadata."""
        try:
            detector = self.detector.control_params()
        except RuntimeError as exc:
            logger.warning("%s: no detector settings sent: %s", self.name, exc)
            detector = {}
        out = dict(params)
        out["control"] = deep_merge(detector, params.get("control", {}))
        try:
            metadata = self.masterfile_params()
        except tango.DevFailed as exc:
            raise RuntimeError(f"{self.name}: det_info for the master file: {devfailed_text(exc)}") from exc
        if metadata is not None and "masterfile_metadata" not in out:
            out["masterfile_metadata"] = metadata
        return out

    # -- Bliss capabilities -------------------------------------------------------------
    def _get_capability(self, capability: type[Capability]) -> Capability | None:
        if capability is EditRoisCapability:
            return ConductorEditRois(self)
        return None

    def detector_info_text(self) -> str:
        """The detector plugin and master-file metadata lines of ``__info__``."""
        lines = []
        try:
            status = self.det_status
            lines.append("Detector status: " + ", ".join(f"{k} {v}" for k, v in status.items()))
            lines.append(self.detector.__info__())
        except (RuntimeError, tango.DevFailed) as exc:
            lines.append(f"Detector (det.detector): {exc}")
        lines.append("Master file metadata (det.masterfile_metadata):")
        lines += ["    " + line for line in self._masterfile_metadata.__info__().splitlines()]
        return "\n".join(lines)
