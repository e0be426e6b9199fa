"""The flat setting names of Bliss's Lima2 plugins on ``det.processing``.

Bliss's plugins keep most settings flat (``use_mask``, ``mask`` = a path,
``nb_frames_buffer``, ``nb_threads``, ``acc_nb_frames``, ``use_roi_stats``...); ours keep
them in groups (``mask.enabled``, ``mask.path``, ``buffers.nb_frames_buffer``...). Each
flat name reads and writes its group field, so a script written for Bliss's controller
runs unchanged; a write of a name no plugin setting has is refused instead of making a
plain attribute that the runs would ignore.
"""

from __future__ import annotations

from typing import Any

from ..settings import SettingsGroup, settings_group

FLAT_GROUPS = ("mask", "flatfield", "background", "filter", "accumulation", "thread", "buffers", "fifo", "roi_use")
"""The groups whose fields Bliss has flat (``fai``, ``max_countrate_protection`` and
the savings are groups there too)."""

RENAMES = {("accumulation", "nb_frames"): "acc_nb_frames"}

Fifo = settings_group("Fifo", {"nb_fifo_frames": 100}, "Frames kept for GetFrame after processing")
RoiUse = settings_group(
    "RoiUse",
    {"use_roi_stats": True, "use_roi_profiles": True},
    "Whether the ROI statistics and profiles run (and give counters) when ROIs are defined",
)


def flat_names(groups: dict[str, type[SettingsGroup]]) -> dict[str, tuple[str, str]]:
    """Bliss's flat name -> (group, field): ``use_<group>`` for ``enabled``, ``<group>``
    for ``path`` (written only: reading gives the group), the field's own name otherwise."""
    out: dict[str, tuple[str, str]] = {}
    for group, cls in groups.items():
        if group not in FLAT_GROUPS:
            continue
        for field in cls._defaults:
            if field == "enabled":
                name = f"use_{group}"
            elif field == "path":
                name = group
            else:
                name = RENAMES.get((group, field), field)
            out[name] = (group, field)
    return out


class FlatNamesMixin:
    """``det.processing.<flat name>`` as Bliss's plugins have it (see the module)."""

    def _flat(self) -> dict[str, tuple[str, str]]:
        groups = dict(getattr(type(self), "groups", {}))
        if "roi_use" in self.__dict__:
            groups["roi_use"] = RoiUse
        return flat_names(groups)

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_"):
            where = self._flat().get(name)
            if where:
                return getattr(getattr(self, where[0]), where[1])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or not self.__dict__.get("_ready"):
            object.__setattr__(self, name, value)
            return
        where = self._flat().get(name)
        is_group = isinstance(self.__dict__.get(name), SettingsGroup)
        if where and (not is_group or isinstance(value, str)):
            setattr(getattr(self, where[0]), where[1], value)
        elif is_group:
            fields = ", ".join(self.__dict__[name]._defaults)
            raise TypeError(f"{name} is a group of settings: set its fields ({fields})")
        elif hasattr(type(self), name) or name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            have = ", ".join(sorted(self._flat()))
            raise AttributeError(f"the {getattr(self, 'name', '')} plugin has no setting {name!r} (flat names: {have})")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._flat()})
