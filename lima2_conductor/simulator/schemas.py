"""JSON schemas of the simulated devices' ``acq_params`` and ``proc_params``.

Every field has a default, so that clients can build a complete parameter set from
the schema alone (as the Lima2 clients do). Times are in microseconds.
"""

from __future__ import annotations

from typing import Any

from ..core.lima2 import (
    DEFAULT_FILENAME_FORMAT,
    DEFAULT_FILENAME_SUFFIX,
    DEFAULT_PIXEL_TYPE,
    DISPATCH_MODES,
    FILE_EXISTS_POLICIES,
    INTERNAL_TRIGGER,
    LEGACY,
    NB_DIMENSIONS,
    PIXEL_TYPES,
    ROUND_ROBIN_DISPATCH,
    TRIGGER_MODES,
)

PROCESSING_CLASS = LEGACY.class_name
PROCESSING_VERSION = "1.0.0"


def _obj(props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "additionalProperties": False, **extra}


def _int(default: int, minimum: int | None = 0, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "default": default, **extra}
    if minimum is not None:
        out["minimum"] = minimum
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
                        "nb_frames": _int(10, maximum=2**31 - 1, description="0 = endless, until Stop"),
                        "expo_time": _int(1000, minimum=1, maximum=3_600_000_000, description="us"),
                        "latency_time": _int(0, maximum=3_600_000_000, description="us"),
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
            "compression": _enum(["none"], "none"),
        }
    )


def proc_params_schema() -> dict[str, Any]:
    """The ``proc_params`` schema of the Legacy pipeline."""
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
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "proc_params",
        **_obj(
            {
                "class_name": {"type": "string", "enum": [PROCESSING_CLASS], "default": PROCESSING_CLASS},
                "frame_idx_enabled": {"type": "boolean", "default": False},
                "fifo": _obj({"nb_fifo_frames": _int(100, minimum=1, maximum=1_000_000)}),
                "buffers": _obj({"nb_frames_buffer": _int(16, minimum=1)}),
                "saving": _saving(),
                "statistics": _obj(
                    {
                        "enabled": {"type": "boolean", "default": False},
                        "rect_rois": {"type": "array", "items": rect, "default": []},
                        "arc_rois": {"type": "array", "items": arc, "default": []},
                    }
                ),
                "profiles": _obj(
                    {
                        "enabled": {"type": "boolean", "default": False},
                        "rois": {"type": "array", "items": rect, "default": []},
                        "directions": {
                            "type": "array",
                            "items": _enum(["horizontal", "vertical"], "horizontal"),
                            "default": [],
                        },
                    }
                ),
                "accumulation": _obj(
                    {
                        "enabled": {"type": "boolean", "default": False},
                        "nb_frames": _int(1, minimum=1),
                    }
                ),
            }
        ),
    }
