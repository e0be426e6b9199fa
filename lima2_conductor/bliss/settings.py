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

    _defaults = {"trigger_mode": "auto", "expo_time": None, "latency_time": 0.0, "nb_frames_per_trigger": 1}
    _checks = {
        "trigger_mode": _trigger_mode,
        "expo_time": _optional_expo,
        "latency_time": _non_negative,
        "nb_frames_per_trigger": _positive_int,
    }


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


class RoiList:
    """A list of named ROIs persisted in Beacon; ``rois = [...]`` replaces it."""

    kinds: tuple[type, ...] = (Roi, ArcRoi)

    def __init__(self, key: str, on_change: Callable[[], None]) -> None:
        self._store = HashObjSetting(key)
        self._on_change = on_change

    @property
    def rois(self) -> list[Any]:
        return [dict_to_roi(d) for d in self._store.get("rois", [])]

    @rois.setter
    def rois(self, rois: Iterable[Any]) -> None:
        rois = list(rois)
        names = set()
        for roi in rois:
            if not isinstance(roi, self.kinds) or (RoiProfile not in self.kinds and isinstance(roi, RoiProfile)):
                raise TypeError(f"{roi!r} is not one of {', '.join(k.__name__ for k in self.kinds)}")
            if not roi.name:
                raise ValueError(f"{roi!r} needs a name")
            if roi.name in names:
                raise ValueError(f"two ROIs are named {roi.name!r}")
            names.add(roi.name)
            roi.check_validity()
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

    def __len__(self) -> int:
        return len(self._store.get("rois", []))

    def __info__(self) -> str:
        rois = self.rois
        return "\n".join(f"{r.name}: {r!r}" for r in rois) if rois else "no ROI"


class RoiProfileList(RoiList):
    kinds = (RoiProfile,)
