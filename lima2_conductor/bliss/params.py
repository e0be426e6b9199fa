"""Pure helpers of the Bliss controller: ROI and saving params, run states, errors.

No Bliss, no Tango here: the values are plain dicts and strings, so that the rules are
unit-tested on their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.lima2 import (
    DEFAULT_PIXEL_TYPE,
    FAI,
    FAILING,
    INTERNAL_TRIGGER,
    LEGACY,
    PIXEL_DTYPES,
    SMX,
    SOFTWARE_TRIGGER,
    TRIGGER_MODES,
    XPCS,
    pixel_dtype,
)


def frame_dtype(pixel_type: str) -> np.dtype:
    """The numpy dtype of a Lima2 pixel type; the default type's for one not (yet) known,
    such as the empty type of a conductor that has not read its detector."""
    return pixel_dtype(pixel_type if pixel_type in PIXEL_DTYPES else DEFAULT_PIXEL_TYPE)


STATS = ("sum", "avg", "std", "min", "max")
FINISHED = ("DONE", "STOPPED", "FAULT", "IDLE", "PREPARED")
ACTIVE = ("STARTING", "RUNNING", "WAITING_FOR_PROC", "STOPPING")
TRANSIENT = ("PREPARING", "RESETTING")


@dataclass(frozen=True)
class RectRoi:
    name: str
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class ArcRoi:
    name: str
    cx: float
    cy: float
    r1: float
    r2: float
    a1: float
    a2: float


@dataclass(frozen=True)
class ProfileRoi:
    name: str
    x: int
    y: int
    width: int
    height: int
    mode: str = "horizontal"

    @property
    def length(self) -> int:
        return self.width if self.mode == "horizontal" else self.height


def roi_from_dict(d: dict[str, Any]) -> RectRoi | ArcRoi | ProfileRoi:
    """A ROI from Bliss's ``to_dict()`` form plus ``name``."""
    kind = d.get("kind", "rect")
    if kind == "arc":
        return ArcRoi(str(d["name"]), *(float(d[k]) for k in ("cx", "cy", "r1", "r2", "a1", "a2")))
    if kind == "profile":
        return ProfileRoi(
            str(d["name"]), *(int(d[k]) for k in ("x", "y", "width", "height")), str(d.get("mode", "horizontal"))
        )
    return RectRoi(str(d["name"]), *(int(d[k]) for k in ("x", "y", "width", "height")))


def stats_order(rois: list[RectRoi | ArcRoi]) -> list[RectRoi | ArcRoi]:
    """ROIs in the conductor's channel order: rectangles first, then arcs."""
    return [r for r in rois if isinstance(r, RectRoi)] + [r for r in rois if isinstance(r, ArcRoi)]


def _rect(x: int, y: int, w: int, h: int) -> dict[str, Any]:
    return {"topleft": {"x": int(x), "y": int(y)}, "dimensions": {"x": int(w), "y": int(h)}}


def processing_params(
    rois: list[RectRoi | ArcRoi], profiles: list[ProfileRoi], saving: dict[str, Any] | None
) -> dict[str, Any]:
    """The ``processing`` part of the conductor's Prepare (Legacy pipeline)."""
    rects = [r for r in rois if isinstance(r, RectRoi)]
    arcs = [r for r in rois if isinstance(r, ArcRoi)]
    out: dict[str, Any] = {
        "statistics": {
            "enabled": bool(rois),
            "rect_rois": [_rect(r.x, r.y, r.width, r.height) for r in rects],
            "arc_rois": [
                {"center": {"x": r.cx, "y": r.cy}, "r1": r.r1, "r2": r.r2, "a1": r.a1, "a2": r.a2} for r in arcs
            ],
        },
        "profiles": {
            "enabled": bool(profiles),
            "rois": [_rect(p.x, p.y, p.width, p.height) for p in profiles],
            "directions": [p.mode for p in profiles],
        },
        "saving": dict(saving) if saving else {"enabled": False},
    }
    return out


def control_params(
    nb_frames: int, expo_time: float, latency_time: float, trigger_mode: str, nb_frames_per_trigger: int = 1
) -> dict[str, Any]:
    """The ``control`` part of Prepare; times in seconds become microseconds."""
    if trigger_mode not in TRIGGER_MODES:
        raise ValueError(f"trigger mode {trigger_mode!r} is not one of {', '.join(TRIGGER_MODES)}")
    return {
        "acq": {
            "nb_frames": int(nb_frames),
            "expo_time": max(1, round(expo_time * 1e6)),
            "latency_time": max(0, round(latency_time * 1e6)),
            "trigger_mode": trigger_mode,
            "nb_frames_per_trigger": max(1, int(nb_frames_per_trigger)),
        }
    }


def default_trigger_mode(capabilities: dict[str, Any]) -> str:
    """``software`` when the detector offers it, else ``internal`` (as Bliss's Lima2)."""
    modes = [str(m).lower() for m in capabilities.get("trigger_modes", [])]
    return SOFTWARE_TRIGGER if SOFTWARE_TRIGGER in modes else INTERNAL_TRIGGER


def min_latency(capabilities: dict[str, Any]) -> float:
    """The detector's minimum latency in seconds (capabilities give nanoseconds)."""
    rng = capabilities.get("latency_time_range")
    try:
        return float(rng[0]) / 1e9 if rng else 0.0
    except (TypeError, ValueError, IndexError):
        return 0.0


def failure_message(name: str, status: str, last_error: str, errors: list[str], cause: str = "", note: str = "") -> str:
    """The error a failed scan raises: the detector, the run's reason(s), what the scan saw
    (``cause``), the conductor's Status."""
    reasons = [e for e in errors if e] or ([last_error] if last_error else [])
    if cause and cause not in reasons:
        reasons.append(cause)
    if note:
        reasons.append(note)
    lines = [f"{name}: the Lima2 acquisition failed"]
    lines += [f"  - {r}" for r in reasons] or ["  - the conductor gave no reason"]
    if status:
        lines.append("Conductor status: " + status.replace("\n", "; "))
    return "\n".join(lines)


def parse_json(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


# -- processing plugins --------------------------------------------------------------------
PLUGIN_CLASSES = {
    "legacy": LEGACY.class_name,
    "smx": SMX.class_name,
    "xpcs": XPCS.class_name,
    "failing": FAILING.class_name,
    "fai": FAI.class_name,
}
"""Bliss's ``ProcPlugin`` names (lower case) and the processing class of each."""
ALLOWED_VERSIONS = ("core-1.2", "dectris-1.2", "smartpix-1.2")
"""Processing versions a plugin runs with (Bliss's Lima2 plugins allow the same)."""


def plugin_name(value: Any) -> str:
    """The plugin named by ``value``: ``"smx"``, ``"SMX"``, Bliss's ``ProcPlugin.SMX`` (by
    its name) or the class name ``"LimaProcessingSmx"``; ``ValueError`` listing them."""
    text = str(getattr(value, "name", value)).strip()
    for name, class_name in PLUGIN_CLASSES.items():
        if text.lower() in (name, class_name.lower()):
            return name
    raise ValueError(f"no processing plugin {text!r}: choose one of {', '.join(PLUGIN_CLASSES)}")


def version_allowed(version: str, allowed: tuple[str, ...] = ALLOWED_VERSIONS) -> bool:
    """``<prefix>-<major>.<minor>.<patch>...`` whose ``<prefix>-<major>.<minor>`` is allowed
    (Bliss's Lima2 rule: ``core-1.2.0`` and ``core-1.2.7-rc1`` are ``core-1.2``)."""
    import re

    match = re.match(r"^((?:[A-Za-z0-9_]+-)+)(\d+)\.(\d+)\.\d+", version or "")
    return bool(match) and f"{match.group(1)}{match.group(2)}.{match.group(3)}" in allowed


def class_refusal(classes: dict[str, Any], class_name: str, allowed: tuple[str, ...] = ALLOWED_VERSIONS) -> str:
    """Why a plugin cannot run ``class_name`` ("" if it can), from the conductor's
    ``processing_classes``: the class must be one it conducts, offered by the receivers,
    in an allowed version."""
    entry = classes.get(class_name)
    if not isinstance(entry, dict):
        return f"the conductor does not conduct {class_name} (it conducts: {', '.join(classes) or 'none'})"
    error = str(entry.get("error") or "")
    if not entry.get("offered"):
        return f"no Lima2 server offers {class_name}" + (f" ({error})" if error else "")
    version = str(entry.get("version") or "")
    if not version_allowed(version, allowed):
        why = f" ({error})" if error and not version else ""
        return f"{class_name} version {version or 'none'} is not one of {', '.join(allowed)}{why}"
    return ""


def roi_params(rois: list[RectRoi | ArcRoi], profiles: list[ProfileRoi]) -> dict[str, Any]:
    """The ``statistics`` and ``profiles`` params of a pipeline with ROIs."""
    out = processing_params(rois, profiles, None)
    del out["saving"]
    return out
