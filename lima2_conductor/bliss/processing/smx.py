"""``smx``: serial crystallography (corrected frames, peaks, accumulations).

Counters: ``frame``, ``sparse_frame`` (the peaks, rebuilt as images),
``acc_corrected``, ``acc_peaks`` and ``nb_peaks`` (peaks found per frame, the
conductor's ``nb_peaks`` rows); ROI statistics and profiles. Settings: ``fai`` (the
azimuthal integration and peak finding of the pipeline) and ``buffers``.
"""

from __future__ import annotations

from typing import ClassVar

from ...core.lima2 import PEAK_COUNTER_DTYPE
from ..settings import SettingsGroup, settings_group
from .common import Image, ProcessingPlugin, buffers
from .flat_names import Fifo
from .legacy import LegacySaving

FAI_COMMON = {
    "absorption_path": "",
    "cl_source_path": "/opt/lima2/processings/common/fai/kernels",
    "csr_path": "/opt/detector/calibration/csr.h5",
    "dark_path": "",
    "dark_variance_path": "",
    "delta_dummy": 0.0,
    "do_dummy": False,
    "dummy": 0.0,
    "error_model": "poisson",
    "flat_path": "",
    "mask_path": "",
    "normalization_factor": 1.0,
    "polarization_path": "",
    "solid_angle_path": "",
    "variance_path": "",
}
"""Azimuthal-integration settings of SMX and FAI, with Bliss's defaults."""


class Smx(ProcessingPlugin):
    name = "smx"
    saving_class = LegacySaving
    images = (
        Image("frame", saving="saving_dense"),
        Image("sparse_frame", saving="saving_sparse", sparse=True),
        Image("acc_corrected", saving="saving_accumulation_corrected"),
        Image("acc_peaks", saving="saving_accumulation_peak"),
    )
    scalar = ("nb_peaks", PEAK_COUNTER_DTYPE)
    groups: ClassVar[dict[str, type[SettingsGroup]]] = {
        "fai": settings_group(
            "SmxFai",
            {
                **FAI_COMMON,
                "acc_nb_frames_reset": 0,
                "acc_nb_frames_xfer": 10,
                "cutoff_clip": 0.0,
                "cutoff_pick": 4.0,
                "cycle": 3,
                "noise": 0.6,
                "radius1d_path": "/opt/detector/calibration/bin_centers.h5",
                "radius2d_path": "/opt/detector/calibration/r_center.h5",
            },
            "Azimuthal integration, peak finding (cutoff_pick: S/N threshold) and accumulation",
        ),
        "buffers": buffers("frames", "peak_counters", "roi_statistics", "roi_profiles", "frame_idx"),
        "fifo": Fifo,
    }
