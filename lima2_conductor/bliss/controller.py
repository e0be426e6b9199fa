"""``Lima2``: the Bliss object of a Lima2 Tango conductor.

Loaded by Beacon (``plugin: generic``) with the YAML node as its only argument; the node
gives ``name`` and ``tango_name``. The object is a counter container (``det.counters``,
``det.counter_groups``) whose step-scan behaviour follows Bliss's own Lima2 controller.
"""

from __future__ import annotations

import json
import time
from typing import Any

import tango
from bliss import global_map
from bliss.common.protocols import CounterContainer
from bliss.common.utils import autocomplete_property
from bliss.config.settings import HashObjSetting
from bliss.controllers.counter import counter_namespace

from ..core.lima2 import DEFAULT_PIXEL_TYPE
from .client import ConductorClient
from .counters import DetectorController
from .detector import DetectorMixin
from .params import PLUGIN_CLASSES, parse_json, plugin_name
from .processing import ProcessingPlugin, make_plugin, refusal
from .settings import AcquisitionSettings

CACHE_S = 5.0
STATIC_ATTRS = (
    "det_plugin",
    "det_model",
    "det_width",
    "det_height",
    "det_pixel_type",
    "frame_channels",
    "receivers",
    "topology_name",
)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


class Lima2(DetectorMixin, CounterContainer):
    """A distributed Lima2 detector, driven through its Tango conductor."""

    def __init__(self, config: Any) -> None:
        self._config = config
        self._name = str(config["name"])
        self.tango_name = str(config["tango_name"])
        self.client = ConductorClient(self.tango_name, int(config.get("tango_timeout_ms", 10000)))
        self._cache: dict[str, Any] = {}
        self._cache_at = 0.0
        self._caps: dict[str, Any] | None = None
        self.last_run: dict[str, Any] = {}
        self.acquisition = AcquisitionSettings(f"lima2_conductor:{self._name}:acquisition")
        self._detector_cc = DetectorController(self)
        # the processing plugin of the next scans (det.proc_plugin), kept in Beacon
        self._plugins: dict[str, ProcessingPlugin] = {}
        self._plugin_store = HashObjSetting(f"lima2_conductor:{self._name}:proc_plugin")
        self._processing = self._plugin(str(self._plugin_store.get("name", "legacy")))
        self._init_detector()
        global_map.register(self, parents_list=["lima2", "controllers", "counters"], tag=self._name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def fullname(self) -> str:
        return self._name

    @autocomplete_property
    def processing(self) -> ProcessingPlugin:
        """The settings of the current processing plugin (``det.proc_plugin``)."""
        return self._processing

    @property
    def proc_plugin(self) -> str:
        """The processing of the next scans: legacy, smx, xpcs, fai or failing (as Bliss's
        ``ProcPlugin``; its names and the class names are accepted too). A plugin whose
        class the Lima2 servers do not offer, or offer in another version, is refused."""
        return self._processing.name

    @proc_plugin.setter
    def proc_plugin(self, value: Any) -> None:
        name = plugin_name(value)
        why = refusal(self.client, PLUGIN_CLASSES[name])
        if why:
            raise ValueError(f"{self._name}: processing plugin {name!r} refused: {why}")
        self._processing = self._plugin(name)
        self._plugin_store["name"] = name

    def _plugin(self, name: str) -> ProcessingPlugin:
        if name not in PLUGIN_CLASSES:
            name = "legacy"
        if name not in self._plugins:
            self._plugins[name] = make_plugin(name, self)
        return self._plugins[name]

    @property
    def detector_controller(self) -> DetectorController:
        """The counter controller of the image counters, master of the others."""
        return self._detector_cc

    # -- conductor values --------------------------------------------------------------
    def cached_value(self, name: str, default: Any = None) -> Any:
        """Detector attributes that rarely change, read at most every few seconds."""
        if time.monotonic() - self._cache_at > CACHE_S or name not in self._cache:
            try:
                self._cache.update(self.client.read_many(list(STATIC_ATTRS)))
                self._cache_at = time.monotonic()
            except tango.DevFailed:
                return self._cache.get(name, default)
        return self._cache.get(name, default)

    def frame_size(self) -> tuple[int, int]:
        """Width and height of the frames (the current pipeline's, else the sensor's; 0, 0
        if the conductor is unreachable)."""
        frame = parse_json(self.cached_value("frame_channels", "")).get("frame") or {}
        shape = frame.get("shape") or []
        if len(shape) == 3 and int(shape[1]) > 0:
            return int(shape[2]), int(shape[1])
        return int(self.cached_value("det_width", 0) or 0), int(self.cached_value("det_height", 0) or 0)

    def frame_info(self, source: str) -> dict[str, Any]:
        """Shape and pixel type of ``source`` in the conductor's current pipeline ({} if none)."""
        return dict(parse_json(self.cached_value("frame_channels", "")).get(source) or {})

    def frame_pixel_type(self) -> str:
        """The pixel type of the frames: the current pipeline's (``frame_channels``), else
        the conductor's ``det_pixel_type`` (what a run with the default params makes)."""
        frame = parse_json(self.cached_value("frame_channels", "")).get("frame") or {}
        return str(frame.get("pixel_type") or self.cached_value("det_pixel_type", "") or DEFAULT_PIXEL_TYPE)

    def capabilities(self) -> dict[str, Any]:
        if not self._caps:
            self._caps = self.client.capabilities()
        return self._caps

    def detector_description(self) -> str:
        """The detector in words, for the scan's metadata."""
        return f"{self.cached_value('det_plugin', '')}, {self.cached_value('det_model', '')} (Lima2 conductor {self.tango_name})"

    @property
    def state(self) -> str:
        return self.client.state_status()[0]

    @property
    def status(self) -> str:
        return self.client.state_status()[1]

    @property
    def nb_frames_acquired(self) -> int:
        """Frames the detector acquired in the current (or last) run, as Bliss's Lima2 has it."""
        return int(self.client.read("nb_frames_acquired"))

    @property
    def nb_frames_xferred(self) -> int:
        """Frames the receivers got from the detector in the current (or last) run."""
        return int(self.client.read("nb_frames_xferred"))

    def reset(self) -> None:
        """Stop whatever runs and reset a failed run (scans also do it by themselves)."""
        self.client.make_ready()

    # -- counters --------------------------------------------------------------------
    @autocomplete_property
    def counters(self) -> Any:
        return counter_namespace(self._processing.counters())

    @autocomplete_property
    def counter_groups(self) -> Any:
        groups = self._processing.counter_groups()
        return counter_namespace({name: counter_namespace(counters) for name, counters in groups.items()})

    def stats_rois(self) -> list[Any]:
        """ROI objects in the conductor's channel order (rectangles, then arcs)."""
        return self._processing.stats_rois()

    # -- shell -------------------------------------------------------------------------------
    def __info__(self) -> str:
        c = self.client
        lines = [f"Lima2 conductor {self.tango_name} ({self._name})"]
        try:
            state, status = c.state_status()
            v = c.read_many(
                [
                    "det_plugin",
                    "det_model",
                    "det_width",
                    "det_height",
                    "det_pixel_type",
                    "topology_name",
                    "receivers",
                    "run_state",
                    "acq_uuid",
                    "nb_frames",
                    "nb_frames_acquired",
                    "nb_frames_ready",
                    "master_files",
                    "last_error",
                ]
            )
        except tango.DevFailed as exc:
            lines.append(f"  conductor unreachable: {exc.args[0].desc}")
            return "\n".join(lines)
        lines += [
            f"State:     {state}",
            "Status:    " + status.replace("\n", "\n           "),
            f"Detector:  {v['det_plugin']} {v['det_model']}, {v['det_width']} x {v['det_height']} {self.frame_pixel_type()}",
            f"Topology:  {v['topology_name']}",
            "Receivers: " + ", ".join(v["receivers"] or []),
            "",
            "Acquisition (det.acquisition):",
            _indent(self.acquisition.__info__()),
            "",
            self.detector_info_text(),
            "",
            "Processing (det.processing):",
            _indent(self._processing.__info__()),
            "",
            f"Last run:  {v['run_state']} {v['acq_uuid']}".rstrip(),
            f"    frames {v['nb_frames_acquired']} acquired, {v['nb_frames_ready']} ready of {v['nb_frames']}",
        ]
        masters = json.loads(v["master_files"] or "{}")
        for source, (path, dataset) in masters.items():
            lines.append(f"    {source}: {path}::{dataset}")
        if v["last_error"]:
            lines.append(f"    last error: {v['last_error']}")
        if self.last_run:
            lines.append(f"    last scan: {self.last_run}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Lima2 {self._name} on conductor {self.tango_name}>"
