"""The user-facing settings of the detector object, persisted in Beacon (Redis).

``det.acquisition``, ``det.processing.saving``, ``det.processing.roi_stats`` and
``det.processing.roi_profiles``; each group is one Beacon hash named after the detector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bliss.config.settings import HashObjSetting
from bliss.controllers.lima.roi import ArcRoi, Roi, RoiProfile, dict_to_roi

from .params import TRIGGER_MODES


class SettingsGroup:
    """Named values with defaults and checks, stored in one Beacon hash."""

    _defaults: dict[str, Any] = {}
    _checks: dict[str, Callable[[Any], Any]] = {}

    def __init__(self, key: str) -> None:
        object.__setattr__(self, "_store", HashObjSetting(key))

    def __getattr__(self, name: str) -> Any:
        if name in self._defaults:
            return self._store.get(name, self._defaults[name])
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        if name not in self._defaults:
            raise AttributeError(f"no setting {name!r} (have: {', '.join(self._defaults)})")
        check = self._checks.get(name)
        self._store[name] = check(value) if check else value

    def __dir__(self) -> Iterable[str]:
        return list(self._defaults)

    def reset(self) -> None:
        """Back to the defaults."""
        self._store.clear()

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._defaults}

    def __info__(self) -> str:
        return "\n".join(f"{name:24s} {value!r}" for name, value in self.as_dict().items())


def _trigger_mode(value: Any) -> str:
    mode = str(value).lower()
    if mode != "auto" and mode not in TRIGGER_MODES:
        raise ValueError(f"trigger_mode must be 'auto' or one of {', '.join(TRIGGER_MODES)}, not {value!r}")
    return mode


def _non_negative(value: Any) -> float:
    v = float(value)
    if v < 0:
        raise ValueError(f"must be >= 0, not {value}")
    return v


def _optional_expo(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    if v <= 0:
        raise ValueError(f"expo_time must be > 0 s (or None: the scan's count time), not {value}")
    return v


def _positive_int(value: Any) -> int:
    v = int(value)
    if v < 1:
        raise ValueError(f"must be >= 1, not {value}")
    return v


class AcquisitionSettings(SettingsGroup):
    """``det.acquisition``: how scans drive the detector.

    ``trigger_mode`` 'auto' lets each scan choose (software for step scans when the
    detector offers it, internal for a single point); ``expo_time`` None means the
    scan's count time; ``latency_time`` is added to the detector's minimum.
    """

    _defaults = {"trigger_mode": "auto", "expo_time": None, "latency_time": 0.0}
    _checks = {"trigger_mode": _trigger_mode, "expo_time": _optional_expo, "latency_time": _non_negative}

    @property
    def nb_frames_per_trigger(self) -> int:
        """Always 1: a scan takes one frame per point, as with Bliss's Lima2 controller
        (its counters have one value per point)."""
        return 1

    @nb_frames_per_trigger.setter
    def nb_frames_per_trigger(self, value: Any) -> None:
        if _positive_int(value) != 1:
            raise ValueError(
                "nb_frames_per_trigger is 1: a scan takes one frame per point, as with Bliss's Lima2 "
                "controller (a custom chain may pass nb_frames_per_trigger and nb_frames in its acq_params)"
            )


class SavingSettings(SettingsGroup):
    """``det.processing.saving``: frames are saved when the scan saves and ``enabled``."""

    _defaults = {"enabled": True, "nb_frames_per_file": 50, "file_exists_policy": "abort"}
    _checks = {
        "enabled": bool,
        "nb_frames_per_file": _positive_int,
        "file_exists_policy": lambda v: _choice(v, ("abort", "overwrite", "append")),
    }


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def check_in_frame(roi: Any, width: int, height: int) -> None:
    """A ROI that lies (partly) outside the ``width`` x ``height`` frame is refused, named:
    every Prepare would fail with it."""
    if width <= 0 or height <= 0:
        return  # frame size unknown: the conductor's Prepare checks it
    if isinstance(roi, ArcRoi):
        cx, cy, r2 = roi.cx, roi.cy, roi.r2
        if cx + r2 < 0 or cy + r2 < 0 or cx - r2 > width - 1 or cy - r2 > height - 1:
            raise ValueError(f"ROI {roi.name!r}: the arc lies outside the {width}x{height} frame")
        return
    x, y, w, h = int(roi.x), int(roi.y), int(roi.width), int(roi.height)
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
        raise ValueError(f"ROI {roi.name!r}: {x},{y} {w}x{h} is outside the {width}x{height} frame")


class RoiList:
    """A list of named ROIs persisted in Beacon; ``rois = [...]`` replaces it. ROIs
    outside the frame (``frame_size()``: width, height) are refused when defined."""

    kinds: tuple[type, ...] = (Roi, ArcRoi)

    def __init__(
        self, key: str, on_change: Callable[[], None], frame_size: Callable[[], tuple[int, int]] | None = None
    ) -> None:
        self._store = HashObjSetting(key)
        self._on_change = on_change
        self._frame_size = frame_size

    @property
    def rois(self) -> list[Any]:
        return [dict_to_roi(d) for d in self._store.get("rois", [])]

    @rois.setter
    def rois(self, rois: Iterable[Any]) -> None:
        rois = list(rois)
        names = set()
        width, height = self._frame_size() if self._frame_size else (0, 0)
        for roi in rois:
            if not isinstance(roi, self.kinds) or (RoiProfile not in self.kinds and isinstance(roi, RoiProfile)):
                raise TypeError(f"{roi!r} is not one of {', '.join(k.__name__ for k in self.kinds)}")
            if not roi.name:
                raise ValueError(f"{roi!r} needs a name")
            if roi.name in names:
                raise ValueError(f"two ROIs are named {roi.name!r}")
            names.add(roi.name)
            roi.check_validity()
            check_in_frame(roi, width, height)
        self._store["rois"] = [{**roi.to_dict(), "name": roi.name} for roi in rois]
        self._on_change()

    def add(self, *rois: Any) -> None:
        """Add ROIs (replacing any of the same name)."""
        new = {r.name for r in rois}
        self.rois = [r for r in self.rois if r.name not in new] + list(rois)

    def remove(self, *names: str) -> None:
        self.rois = [r for r in self.rois if r.name not in names]

    def clear(self) -> None:
        self.rois = []

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(d) for d in self._store.get("rois", [])]

    # -- Bliss's Lima2 API: one ROI by name --------------------------------------------
    def set_rect(self, name: str, x: int, y: int, width: int, height: int) -> None:
        """Add or replace rectangle ``name``."""
        self.add(Roi(x, y, width, height, name=name))

    def set_arc(self, name: str, cx: float, cy: float, r1: float, r2: float, a1: float, a2: float) -> None:
        """Add or replace arc ``name`` (centre, radii, angles in degrees)."""
        self.add(ArcRoi(cx, cy, r1, r2, a1, a2, name=name))

    def set(self, name: str, x: int, y: int, width: int, height: int) -> None:
        """Add or replace rectangle ``name`` (as ``set_rect``)."""
        self.set_rect(name, x, y, width, height)

    def __getitem__(self, name: str) -> Any:
        for roi in self.rois:
            if roi.name == name:
                return roi
        raise KeyError(f"no ROI {name!r} (have: {', '.join(r.name for r in self.rois) or 'none'})")

    def get(self, name: str) -> Any:
        """ROI ``name`` (as ``[name]``)."""
        return self[name]

    def __setitem__(self, name: str, roi: Any) -> None:
        roi._name = name  # Bliss's ROIs have a read-only name
        self.add(roi)

    def __delitem__(self, name: str) -> None:
        self[name]  # KeyError naming the ROIs
        self.remove(name)

    def __contains__(self, name: object) -> bool:
        return any(roi.name == name for roi in self.rois)

    def __len__(self) -> int:
        return len(self._store.get("rois", []))

    def __info__(self) -> str:
        rois = self.rois
        return "\n".join(f"{r.name}: {r!r}" for r in rois) if rois else "no ROI"


class RoiProfileList(RoiList):
    kinds = (RoiProfile,)

    def set(self, name: str, x: int, y: int, width: int, height: int, mode: str = "horizontal") -> None:  # type: ignore[override]
        """Add or replace profile ``name`` (``mode``: horizontal or vertical)."""
        self.add(RoiProfile(x, y, width, height, mode=mode, name=name))

    def set_rect(self, name: str, x: int, y: int, width: int, height: int) -> None:
        self.set(name, x, y, width, height)

    def set_arc(self, *args: Any) -> None:
        raise TypeError("a profile is a rectangle: use set(name, x, y, width, height, mode)")


def settings_group(name: str, defaults: dict[str, Any], doc: str = "") -> type[SettingsGroup]:
    """A settings group whose values keep the type of their default (a bool stays a bool,
    an int an int; a list of strings a list), for the plugins' params groups."""
    checks = {key: _typed(key, value) for key, value in defaults.items()}
    return type(name, (SettingsGroup,), {"_defaults": dict(defaults), "_checks": checks, "__doc__": doc})


def _typed(key: str, default: Any) -> Callable[[Any], Any]:
    kind = type(default)

    def check(value: Any) -> Any:
        if kind is bool:
            if not isinstance(value, bool | int):
                raise TypeError(f"{key} takes True or False, not {value!r}")
            return bool(value)
        if kind is int:
            if isinstance(value, bool) or int(value) != value:
                raise TypeError(f"{key} takes an integer, not {value!r}")
            return int(value)
        if kind is float:
            return float(value)
        if kind is list:
            return [str(v) for v in value]
        return str(value)

    return check
