"""JSON schemas of the simulated devices' ``acq_params`` and ``proc_params``.

Every field has a default, so that clients can build a complete parameter set from
the schema alone (as the Lima2 clients do). Times are in microseconds.
"""

from __future__ import annotations

from typing import Any

from ..core.lima2 import (
    ACQ_LIMITS,
    CORE_VERSION,
    DEFAULT_FILENAME_FORMAT,
    DEFAULT_FILENAME_SUFFIX,
    DEFAULT_PIXEL_TYPE,
    DISPATCH_MODES,
    FAI,
    FAILING,
    FILE_EXISTS_POLICIES,
    INTERNAL_TRIGGER,
    LEGACY,
    NB_DIMENSIONS,
    PIXEL_TYPES,
    ROUND_ROBIN_DISPATCH,
    SMX,
    TRIGGER_MODES,
    XPCS,
)

PROCESSING_CLASS = LEGACY.class_name
PROCESSING_VERSION = CORE_VERSION


def _obj(props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "additionalProperties": False, **extra}


def _int(default: int, minimum: int | None = 0, maximum: int | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "default": default, **extra}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def _num(default: float, **extra: Any) -> dict[str, Any]:
    return {"type": "number", "default": default, **extra}


def _enum(values: list[str] | tuple[str, ...], default: str) -> dict[str, Any]:
    return {"type": "string", "enum": values, "default": default}


def _point(x: float, y: float, kind: str = "integer") -> dict[str, Any]:
    return _obj({"x": {"type": kind, "default": x, "minimum": 0}, "y": {"type": kind, "default": y, "minimum": 0}})


def _rect(w: int, h: int) -> dict[str, Any]:
    return _obj({"topleft": _point(0, 0), "dimensions": _point(w, h)})


def acq_params_schema(width: int, height: int) -> dict[str, Any]:
    """The ``acq_params`` schema of a sensor of ``width`` x ``height`` pixels."""
    peak = _obj(
        {
            "x0": _num(width / 2),
            "y0": _num(height / 2),
            "fwhm": _num(min(width, height) / 8, exclusiveMinimum=0),
            "max": _num(1000.0),
        }
    )
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "acq_params",
        **_obj(
            {
                "acq": _obj(
                    {
                        "nb_frames": _int(10, *ACQ_LIMITS["nb_frames"], description="0 = endless, until Stop"),
                        "expo_time": _int(1000, *ACQ_LIMITS["expo_time"], description="us"),
                        "latency_time": _int(0, *ACQ_LIMITS["latency_time"], description="us"),
                        "trigger_mode": _enum(TRIGGER_MODES, INTERNAL_TRIGGER),
                        "nb_frames_per_trigger": _int(1, minimum=1),
                        "acq_mode": _enum(["normal", "accumulation", "concatenation"], "normal"),
                    }
                ),
                "img": _obj(
                    {
                        "binning": _obj({"x": _int(1, minimum=1), "y": _int(1, minimum=1)}),
                        "roi": _rect(0, 0),
                        "flip": _enum(["none", "left_right", "up_down", "both"], "none"),
                    }
                ),
                "shut": _obj({"mode": _enum(["manual", "auto_frame", "auto_sequence"], "manual")}),
                "accu": _obj(
                    {
                        "nb_frames": _int(1, minimum=1),
                        "expo_time": _int(1000, minimum=1),
                        "saturated_threshold": _int(0),
                    }
                ),
                "vid": _obj({"auto_exposure_mode": _enum(["off", "on"], "off")}),
                "xfer": _obj(
                    {
                        "alignment": _obj(
                            {
                                "col_alignment": _int(1),
                                "row_alignment": _int(8),
                                "header": _int(0),
                                "footer": _int(0),
                            }
                        ),
                        "slice": _obj({"start": _int(0), "stride": _int(1, minimum=1)}),
                    }
                ),
                "det": _obj(
                    {
                        "generator": _obj(
                            {
                                "type": _enum(["gauss", "diffraction"], "gauss"),
                                "gauss": _obj(
                                    {
                                        "peaks": {
                                            "type": "array",
                                            "items": peak,
                                            "default": [
                                                {
                                                    "x0": width / 2,
                                                    "y0": height / 2,
                                                    "fwhm": min(width, height) / 8,
                                                    "max": 1000.0,
                                                }
                                            ],
                                        },
                                        "grow_factor": _num(0.0),
                                    }
                                ),
                                "diffraction": _obj(
                                    {
                                        "x0": _num(width / 2),
                                        "y0": _num(height / 2),
                                        "source_pos_x": _num(5.0),
                                        "source_pos_y": _num(5.0),
                                        "source_speed_x": _num(0.0),
                                        "source_speed_y": _num(0.0),
                                    }
                                ),
                                "pixel_type": _enum(PIXEL_TYPES, DEFAULT_PIXEL_TYPE),
                                "nb_channels": _int(1, minimum=1, maximum=16),
                            }
                        ),
                        "nb_prefetch_frames": _int(4, minimum=1, maximum=1024),
                        "dropped_frame_idx": _int(0),
                        "failed_frame_idx": _int(0),
                        "dispatch_mode": _enum(DISPATCH_MODES, ROUND_ROBIN_DISPATCH),
                    }
                ),
            }
        ),
    }


def _saving() -> dict[str, Any]:
    return _obj(
        {
            "enabled": {"type": "boolean", "default": False},
            "base_path": {"type": "string", "default": "/tmp"},
            "filename_prefix": {"type": "string", "default": "lima2", "pattern": "^[^/]+$"},
            "filename_format": {
                "type": "string",
                "default": DEFAULT_FILENAME_FORMAT,
            },
            "filename_suffix": {"type": "string", "default": DEFAULT_FILENAME_SUFFIX},
            "filename_rank": _int(0),
            "start_number": _int(0),
            "file_exists_policy": _enum(FILE_EXISTS_POLICIES, "abort"),
            "nb_frames_per_file": _int(50, minimum=1),
            "nx_entry_name": {"type": "string", "default": "entry_0000", "pattern": "^[A-Za-z0-9_]+$"},
            "nx_instrument_name": {"type": "string", "default": "instrument", "pattern": "^[A-Za-z0-9_]+$"},
            "nx_detector_name": {"type": "string", "default": "detector", "pattern": "^[A-Za-z0-9_]+$"},
            "nb_dimensions": _enum(NB_DIMENSIONS, "dim_3d_or_4d"),
            "include_frame_idx": {"type": "boolean", "default": False},
            "compression": _enum(["none", "bshuf_lz4", "zip"], "none"),
        }
    )


def _bool(default: bool = False) -> dict[str, Any]:
    return {"type": "boolean", "default": default}


def _str(default: str = "") -> dict[str, Any]:
    return {"type": "string", "default": default}


def _buffers(*names: str) -> dict[str, Any]:
    return _obj({f"nb_{name}_buffer": _int(100, minimum=1) for name in names})


def _switch(**fields: Any) -> dict[str, Any]:
    """``{enabled false, ...}``: an optional correction (mask, flatfield, filter...)."""
    return _obj({"enabled": _bool(), **fields})


def _rois() -> dict[str, Any]:
    """``statistics`` and ``profiles``, shared by every pipeline that has ROIs."""
    arc = _obj(
        {
            "center": _point(0.0, 0.0, "number"),
            "r1": _num(0.0, minimum=0),
            "r2": _num(10.0, minimum=0),
            "a1": _num(0.0),
            "a2": _num(360.0),
        }
    )
    rect = _rect(1, 1)
    return {
        "statistics": _obj(
            {
                "enabled": _bool(),
                "rect_rois": {"type": "array", "items": rect, "default": []},
                "arc_rois": {"type": "array", "items": arc, "default": []},
            }
        ),
        "profiles": _obj(
            {
                "enabled": _bool(),
                "rois": {"type": "array", "items": rect, "default": []},
                "directions": {
                    "type": "array",
                    "items": _enum(["horizontal", "vertical"], "horizontal"),
                    "default": [],
                },
            }
        ),
    }


def _max_countrate_protection() -> dict[str, Any]:
    return _obj(
        {
            "enabled": _bool(),
            "max_countrate": _num(100000.0, minimum=0),
            "pixel_capacity_override": {"type": "array", "items": {"type": "object"}, "default": []},
            "abort_on_protection": _bool(True),
            "ignore_max_value": _bool(),
            "command": _str(),
            "args": {"type": "array", "items": {"type": "string"}, "default": []},
        }
    )


FAI_COMMON: dict[str, Any] = {
    "absorption_path": _str(),
    "cl_source_path": _str("/opt/lima2/processings/common/fai/kernels"),
    "csr_path": _str("/opt/detector/calibration/csr.h5"),
    "dark_path": _str(),
    "dark_variance_path": _str(),
    "delta_dummy": _num(0.0),
    "do_dummy": _bool(),
    "dummy": _num(0.0),
    "error_model": _enum(["no_var", "variance", "poisson", "azimuthal", "hybrid"], "poisson"),
    "flat_path": _str(),
    "mask_path": _str(),
    "normalization_factor": _num(1.0),
    "polarization_path": _str(),
    "solid_angle_path": _str(),
    "variance_path": _str(),
}
"""Azimuthal-integration fields shared by SMX and FAI (the simulator integrates around
the frame centre and reads none of the calibration files)."""

SMX_FAI: dict[str, Any] = {
    **FAI_COMMON,
    "acc_nb_frames_reset": _int(0),
    "acc_nb_frames_xfer": _int(10, minimum=1),
    "cutoff_clip": _num(0.0),
    "cutoff_pick": _num(4.0, minimum=0),
    "cycle": _int(3),
    "noise": _num(0.6),
    "radius1d_path": _str("/opt/detector/calibration/bin_centers.h5"),
    "radius2d_path": _str("/opt/detector/calibration/r_center.h5"),
}


def _class_schema(class_name: str, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "proc_params",
        **_obj({"class_name": {"type": "string", "enum": [class_name], "default": class_name}, **props}),
    }


def legacy_schema() -> dict[str, Any]:
    return _class_schema(
        LEGACY.class_name,
        {
            "frame_idx_enabled": _bool(),
            "fifo": _obj({"nb_fifo_frames": _int(100, minimum=1, maximum=1_000_000)}),
            "buffers": _buffers("frames", "input_frames", "roi_statistics", "roi_profiles", "frame_idx"),
            "mask": _switch(path=_str()),
            "flatfield": _switch(path=_str()),
            "background": _switch(path=_str()),
            "max_countrate_protection": _max_countrate_protection(),
            "saving": _saving(),
            **_rois(),
            "accumulation": _obj({"enabled": _bool(), "nb_frames": _int(1, minimum=1)}),
        },
    )


def failing_schema() -> dict[str, Any]:
    return _class_schema(
        FAILING.class_name,
        {
            "failed_on_prepare": _bool(),
            "failed_on_activate": _bool(),
            "failed_frame_idx": _int(0, description="global index of the frame that fails; 0 = never"),
        },
    )


def smx_schema() -> dict[str, Any]:
    return _class_schema(
        SMX.class_name,
        {
            "frame_idx_enabled": _bool(),
            "fifo": _obj({"nb_fifo_frames": _int(100, minimum=1, maximum=1_000_000)}),
            "buffers": _buffers("frames", "peak_counters", "roi_statistics", "roi_profiles", "frame_idx"),
            **_rois(),
            "fai": _obj(SMX_FAI),
            "saving_dense": _saving(),
            "saving_sparse": _saving(),
            "saving_accumulation_corrected": _saving(),
            "saving_accumulation_peak": _saving(),
        },
    )


def xpcs_schema() -> dict[str, Any]:
    return _class_schema(
        XPCS.class_name,
        {
            "frame_idx_enabled": _bool(),
            "fifo": _obj({"nb_fifo_frames": _int(100, minimum=1, maximum=1_000_000)}),
            "thread": _obj({"nb_threads": _int(8, minimum=1)}),
            "buffers": _buffers(
                "frames", "input_frames", "sparse_frames", "roi_statistics", "roi_profiles", "frame_idx"
            ),
            "accumulation": _obj({"enabled": _bool(), "nb_frames": _int(1, minimum=1)}),
            "mask": _switch(path=_str()),
            "flatfield": _switch(path=_str()),
            "background": _switch(path=_str()),
            "filter": _switch(max_count=_int(0)),
            **_rois(),
            "saving_dense": _saving(),
            "saving_sparse": _saving(),
        },
    )


def fai_schema() -> dict[str, Any]:
    return _class_schema(
        FAI.class_name,
        {
            "frame_idx_enabled": _bool(),
            "fifo": _obj({"nb_fifo_frames": _int(100, minimum=1, maximum=1_000_000)}),
            "buffers": _buffers("frames", "roi_statistics", "roi_profiles", "frame_idx"),
            "mask": _switch(path=_str()),
            "max_countrate_protection": _max_countrate_protection(),
            **_rois(),
            "fai": _obj(FAI_COMMON),
            "saving_dense": _saving(),
            "saving_fai": _saving(),
        },
    )


SCHEMAS = {
    LEGACY.class_name: legacy_schema,
    FAILING.class_name: failing_schema,
    SMX.class_name: smx_schema,
    XPCS.class_name: xpcs_schema,
    FAI.class_name: fai_schema,
}
"""The ``proc_params`` schema of each processing class the simulator serves."""


def proc_params_schema(class_name: str = PROCESSING_CLASS) -> dict[str, Any]:
    """The ``proc_params`` schema of a processing class (Legacy by default)."""
    return SCHEMAS[class_name]()
