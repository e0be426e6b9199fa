"""``xpcs``: photon correlation (input, processed, sparse and accumulated frames).

Counters: ``input_frame``, ``frame``, ``sparse_frame`` (rebuilt as images),
``accumulated_frame`` and ``fill_factor`` (lit pixels per frame, the conductor's
``fill_factor`` rows); ROI statistics and profiles. Settings: ``mask``, ``flatfield``,
``background``, ``filter`` (cosmics: ``max_count``), ``accumulation``, ``thread``,
``buffers``.
"""

from __future__ import annotations

from typing import ClassVar

from ...core.lima2 import FILL_FACTOR_DTYPE
from ..settings import SettingsGroup, settings_group
from .common import Image, ProcessingPlugin, buffers, switch
from .flat_names import Fifo
from .legacy import LegacySaving


class Xpcs(ProcessingPlugin):
    name = "xpcs"
    saving_class = LegacySaving
    images = (
        Image("input_frame"),
        Image("frame", saving="saving_dense"),
        Image("sparse_frame", saving="saving_sparse", sparse=True),
        Image("accumulated_frame"),
    )
    scalar = ("fill_factor", FILL_FACTOR_DTYPE)
    groups: ClassVar[dict[str, type[SettingsGroup]]] = {
        "mask": switch("Mask", path=""),
        "flatfield": switch("Flatfield", path=""),
        "background": switch("Background", path=""),
        "filter": switch("Filter", max_count=0),
        "accumulation": settings_group("Accumulation", {"enabled": False, "nb_frames": 1}),
        "thread": settings_group("Thread", {"nb_threads": 8}),
        "buffers": buffers("frames", "input_frames", "sparse_frames", "roi_statistics", "roi_profiles", "frame_idx"),
        "fifo": Fifo,
    }
