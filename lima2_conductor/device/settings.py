"""The conductor's memorized settings: the typed defaults of the next Prepare."""

from __future__ import annotations

import math

import tango

from ..core.lima2 import TRIGGER_MODES
from .attributes import Setting
from .specs import FRAMES


def _positive(v: float) -> str:
    return "" if math.isfinite(v) and v > 0 else f"must be a finite number > 0 s, not {v}"


def _not_negative(v: float) -> str:
    return "" if math.isfinite(v) and v >= 0 else f"must be a finite number >= 0 s, not {v}"


def _file_name(v: str) -> str:
    bad = not v or "/" in v or any(ord(c) < 32 for c in v)
    return f"{v!r} must be a non-empty file name (no '/', no control characters)" if bad else ""


def _directory(v: str) -> str:
    return f"{v!r} must be a path without control characters" if any(ord(c) < 32 for c in v) else ""


SETTINGS: list[Setting] = [
    Setting(
        "acq_nb_frames",
        int,
        10,
        "Frames",
        "Frames of the next Prepare (0 = endless, until Stop); >= 0",
        FRAMES,
        "%d",
        lambda v: "" if v >= 0 else "must be >= 0 (0 = endless)",
    ),
    Setting(
        "acq_expo_time", float, 0.001, "Exposure time", "Exposure time of the next Prepare; > 0", "s", "%.6f", _positive
    ),
    Setting(
        "acq_latency_time",
        float,
        0.0,
        "Latency time",
        "Latency time of the next Prepare; >= 0",
        "s",
        "%.6f",
        _not_negative,
    ),
    Setting(
        "acq_trigger_mode",
        tango.DevEnum,
        0,
        "Trigger mode",
        "Trigger mode of the next Prepare",
        check=lambda v: "" if 0 <= v < len(TRIGGER_MODES) else f"must be 0..{len(TRIGGER_MODES) - 1}",
        enum_labels=[m.upper() for m in TRIGGER_MODES],
    ),
    Setting("saving_enabled", bool, False, "Saving", "Save frames in the next acquisition"),
    Setting("saving_directory", str, "/tmp", "Saving directory", "Directory of the saved files", check=_directory),
    Setting("saving_prefix", str, "lima2", "Saving prefix", "File name prefix of the saved files", check=_file_name),
    Setting(
        "latency_time",
        float,
        0.0,
        "Latency time",
        "Latency time of the next Prepare; >= 0",
        "s",
        "%.6f",
        _not_negative,
        alias_of="acq_latency_time",
    ),
]
SETTING_NAMES = [s.name for s in SETTINGS if not s.alias_of]
