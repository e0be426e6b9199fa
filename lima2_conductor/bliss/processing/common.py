"""What every processing plugin shares: its settings groups, saving, ROI statistics and
profiles, its counters, and the ``processing`` params of the conductor's Prepare.

A plugin is ``det.processing`` while it is ``det.proc_plugin``. Its settings live in
Beacon under a key of its own, so switching plugins keeps each one's settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from bliss.controllers.lima.roi import ArcRoi, Roi

from ..counters import FrameCounter, RoiProfilesController, RoiStatsController, ScalarController
from ..params import PLUGIN_CLASSES, ProfileRoi, roi_from_dict, roi_params
from ..roi_editor import EditRoisMixin
from ..settings import RoiList, RoiProfileList, SavingSettings, SettingsGroup, settings_group
from .flat_names import FlatNamesMixin, RoiUse

INPUT = "input_frame"
"""The detector's frames, as the pipeline received them."""
SavingOf = Callable[[str], dict[str, Any]]
"""``saving_of(source)``: the scan's saving of that frame source (``{"enabled": False}``
when the scan does not save it)."""


@dataclass(frozen=True)
class Image:
    """One frame source of the pipeline, offered as an image counter of the same name."""

    name: str
    saving: str = ""  # the params key of its saving channel ("" if never saved)
    sparse: bool = False  # read rebuilt as a dense image (GetFrame "<name>:dense")
    vector: bool = False  # one curve per frame (FAI's radial integration), also read as "<name>:dense"


def switch(name: str, **fields: Any) -> type[SettingsGroup]:
    """A correction that is off by default (mask, flatfield, background...)."""
    return settings_group(name, {"enabled": False, **fields}, f"``{name.lower()}``: off unless enabled")


def buffers(*names: str) -> type[SettingsGroup]:
    return settings_group("Buffers", {f"nb_{n}_buffer": 100 for n in names}, "Device buffers (frames kept)")


class ProcessingPlugin(FlatNamesMixin, EditRoisMixin):
    """A processing class of the conductor as ``det.processing`` (``edit_rois()``: Flint's
    ROI editor; Bliss's flat setting names, see :mod:`.flat_names`)."""

    name: ClassVar[str] = ""
    images: ClassVar[tuple[Image, ...]] = ()
    scalar: ClassVar[tuple[str, Any] | None] = None  # (reduced-data source, row dtype)
    has_rois: ClassVar[bool] = True
    groups: ClassVar[dict[str, type[SettingsGroup]]] = {}
    saving_class: ClassVar[type[SettingsGroup]] = SavingSettings

    def __init__(self, det: Any, key: str) -> None:
        self._det = det
        master = det.detector_controller
        self.saving = self.saving_class(f"{key}:saving")
        for attr, group in self.groups.items():
            setattr(self, attr, group(f"{key}:{attr}"))
        self.image_counters = [
            FrameCounter(i.name, master, f"{i.name}:dense" if i.sparse or i.vector else i.name, i.vector)
            for i in self.images
        ]
        self._scalar_cc = ScalarController("others", master, *self.scalar) if self.scalar else None
        if self.has_rois:
            self.roi_stats = RoiList(f"{key}:roi_stats", self.refresh, det.frame_size)
            self.roi_profiles = RoiProfileList(f"{key}:roi_profiles", self.refresh, det.frame_size)
            self._stats_cc = RoiStatsController("roi_statistics", master)
            self._profiles_cc = RoiProfilesController("roi_profiles", master)
            self.roi_use = RoiUse(f"{key}:roi_use")
        self._ready = True

    @property
    def class_name(self) -> str:
        return PLUGIN_CLASSES[self.name]

    # -- counters ----------------------------------------------------------------------
    def stats_rois(self) -> list[Any]:
        """ROI objects in the conductor's channel order (rectangles, then arcs)."""
        if not self.has_rois or not self.roi_use.use_roi_stats:
            return []
        stats = self.roi_stats.rois
        return [r for r in stats if type(r) is Roi] + [r for r in stats if type(r) is ArcRoi]

    def refresh(self) -> None:
        """Counters of the current ROIs (called when they change, and before listing)."""
        if self.has_rois:
            self._stats_cc.rebuild(self.stats_rois())
            self._profiles_cc.rebuild(self.profile_rois())

    def profile_rois(self) -> list[Any]:
        """The profiles that run (none while ``use_roi_profiles`` is off)."""
        if not self.has_rois or not self.roi_use.use_roi_profiles:
            return []
        return self.roi_profiles.rois

    def roi_counters(self) -> list[Any]:
        if not self.has_rois:
            return []
        self.refresh()
        return [*self._stats_cc.counters, *self._profiles_cc.counters]

    def ancillary_counters(self) -> list[Any]:
        return [self._scalar_cc.counter] if self._scalar_cc else []

    def counters(self) -> list[Any]:
        """The processed images first (``frame``), then the input frames and the rest."""
        ordered = sorted(self.image_counters, key=lambda c: c.name == INPUT)
        return [*ordered, *self.ancillary_counters(), *self.roi_counters()]

    def counter_groups(self) -> dict[str, list[Any]]:
        """As Bliss's Lima2: ``images`` (every frame source, the input frames included),
        ``rois``, ``ancillary``, and ``default`` (what ``det`` alone scans): every counter.
        ``input`` names the input frames alone."""
        counters = self.counters()
        images = [c for c in counters if c in self.image_counters]
        return {
            "images": images,
            "input": [c for c in images if c.name == INPUT],
            "rois": self.roi_counters(),
            "ancillary": self.ancillary_counters(),
            "default": counters,
        }

    # -- params ------------------------------------------------------------------------
    def params(self, saving_of: SavingOf) -> dict[str, Any]:
        """The ``processing`` params of the next run (deep-merged by the conductor over
        the class's defaults)."""
        out: dict[str, Any] = {"class_name": self.class_name}
        for attr in self.groups:
            out[attr] = getattr(self, attr).as_dict()
        if self.has_rois:
            stats = [roi_from_dict({**r.to_dict(), "name": r.name}) for r in self.stats_rois()]
            profiles = [ProfileRoi(r.name, r.x, r.y, r.width, r.height, r.mode) for r in self.profile_rois()]
            out.update(roi_params(stats, profiles))  # type: ignore[arg-type]
        channel = {k: v for k, v in self.saving.as_dict().items() if k != "enabled"}
        for image in self.images:
            if image.saving:
                saving = saving_of(image.name)
                out[image.saving] = {**channel, **saving} if saving.get("enabled") else {"enabled": False}
        return out

    # -- shell -------------------------------------------------------------------------
    def __info__(self) -> str:
        lines = [f"Plugin {self.name} ({self.class_name})", "Saving (when the scan saves):", _indent(self.saving)]
        for attr in self.groups:
            lines += [f"{attr}:", _indent(getattr(self, attr))]
        if self.has_rois:
            lines += ["ROI statistics:", _indent(self.roi_stats), "ROI profiles:", _indent(self.roi_profiles)]
        names = [c.name for c in self.counters()]
        lines.append("Counters: " + ", ".join(names))
        return "\n".join(lines)


def _indent(obj: Any) -> str:
    return "\n".join("    " + line for line in obj.__info__().splitlines())
