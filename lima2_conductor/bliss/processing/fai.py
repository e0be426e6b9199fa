"""``fai``: azimuthal integration (frames and one radial curve per frame).

Counters: ``frame`` and ``fai_averint`` (the integrated intensity per radial bin, a curve
per frame, Bliss's vector counter); ROI statistics and profiles. Settings: ``fai``,
``mask``, ``max_countrate_protection``, ``buffers``.
"""

from __future__ import annotations

from typing import ClassVar

from ..settings import SettingsGroup, settings_group
from .common import Image, ProcessingPlugin, buffers, switch
from .flat_names import Fifo
from .legacy import LegacySaving, MaxCountrate
from .smx import FAI_COMMON


class Fai(ProcessingPlugin):
    name = "fai"
    saving_class = LegacySaving
    images = (Image("frame", saving="saving_dense"), Image("fai_averint", saving="saving_fai", vector=True))
    groups: ClassVar[dict[str, type[SettingsGroup]]] = {
        "fai": settings_group("Fai", dict(FAI_COMMON), "Azimuthal integration"),
        "mask": switch("Mask", path=""),
        "max_countrate_protection": MaxCountrate,
        "buffers": buffers("frames", "roi_statistics", "roi_profiles", "frame_idx"),
        "fifo": Fifo,
    }
