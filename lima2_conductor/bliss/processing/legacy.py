"""``legacy``: the Legacy pipeline (processed and input frames, ROI statistics and profiles).

Settings as Bliss's Lima2 Legacy plugin has them, as far as the conductor's Legacy params
schema has them: ``mask``, ``flatfield``, ``background`` (each ``enabled`` and ``path``),
``accumulation`` (``enabled``, ``nb_frames``), ``max_countrate_protection``, ``buffers``,
and on ``saving`` the ``compression`` and ``nb_dimensions`` of the files.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..counters import RoiStatsController
from ..settings import SavingSettings, SettingsGroup, _choice, settings_group
from .common import Image, ProcessingPlugin, buffers, switch
from .flat_names import Fifo


class LegacySaving(SavingSettings):
    """``det.processing.saving`` of the pipelines that save frames (Legacy, SMX, XPCS,
    FAI): also the files' compression and dimensions (``dim_3d_or_4d``: 3-D for one
    channel), applied to each saved channel."""

    _defaults = {**SavingSettings._defaults, "compression": "none", "nb_dimensions": "dim_3d_or_4d"}
    _checks = {
        **SavingSettings._checks,
        "compression": lambda v: _choice(v, ("none", "bshuf_lz4", "zip")),
        "nb_dimensions": lambda v: _choice(v, ("dim_3d_or_4d", "dim_4d")),
    }


MaxCountrate = settings_group(
    "MaxCountrateProtection",
    {"enabled": False, "max_countrate": 100000.0, "abort_on_protection": True, "ignore_max_value": False},
    "Stop (or flag) a run whose pixels count faster than ``max_countrate``",
)


class Legacy(ProcessingPlugin):
    name = "legacy"
    images = (Image("frame", saving="saving"), Image("input_frame"))
    saving_class = LegacySaving
    groups: ClassVar[dict[str, type[SettingsGroup]]] = {
        "mask": switch("Mask", path=""),
        "flatfield": switch("Flatfield", path=""),
        "background": switch("Background", path=""),
        "accumulation": settings_group("Accumulation", {"enabled": False, "nb_frames": 1}),
        "max_countrate_protection": MaxCountrate,
        "buffers": buffers("frames", "input_frames", "roi_statistics", "roi_profiles", "frame_idx"),
        "fifo": Fifo,
    }

    def __init__(self, det: Any, key: str) -> None:
        super().__init__(det, key)
        # the earlier ROI paths (det:roi_stats:r1_sum), in det.counter_groups.roi_stats only
        self._old_stats_cc = RoiStatsController("roi_stats", det.detector_controller)

    def refresh(self) -> None:
        super().refresh()
        if hasattr(self, "_old_stats_cc"):
            self._old_stats_cc.rebuild(self.stats_rois())

    def counter_groups(self) -> dict[str, list[Any]]:
        groups = super().counter_groups()
        groups["roi_stats"] = list(self._old_stats_cc.counters)
        return groups
