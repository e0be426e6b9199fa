"""The conductor's attributes, declared from one spec list.

Reads are served in the calling Tango thread from the device's current snapshot, an
immutable object that the event loop replaces, never modifies: no hop into the event
loop, so a read is fast and never waits behind a command.

Read-only attributes read the device's current :class:`~lima2_conductor.core.view.ConductorView`
(one snapshot per monitor tick), so adding one is one line here. Every one has a label, a
description, a unit and format where it has them, and change events (pushed by the
device's publisher when the value changes). The memorized settings (``acq_*``,
``saving_*``) come from one factory too; bad values are ``PARAM_ERROR``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tango import AttrWriteType, DispLevel
from tango.server import attribute

from ..core.view import ConductorView


@dataclass(frozen=True)
class ViewAttr:
    """One read-only attribute computed from the view."""

    name: str
    dtype: Any
    read: Callable[[ConductorView], Any]
    label: str
    doc: str
    unit: str = ""
    format: str = ""
    expert: bool = False
    max_dim_x: int = 0
    enum_labels: list[str] = field(default_factory=list)

    def declare(self) -> attribute:
        def fget(device: Any) -> Any:
            return self.read(device.view)

        kwargs: dict[str, Any] = {
            "name": self.name,
            "dtype": self.dtype,
            "fget": fget,
            "label": self.label,
            "doc": self.doc,
            "unit": self.unit,
            "display_level": DispLevel.EXPERT if self.expert else DispLevel.OPERATOR,
            "change_event_implemented": True,
            "change_event_detect": False,
            "read_green_mode": False,
        }
        if self.format:
            kwargs["format"] = self.format
        if self.max_dim_x:
            kwargs["max_dim_x"] = self.max_dim_x
        if self.enum_labels:
            kwargs["enum_labels"] = self.enum_labels
        return attribute(**kwargs)


@dataclass(frozen=True)
class Setting:
    """A memorized read/write attribute that fills the defaults of the next Prepare."""

    name: str
    dtype: Any
    default: Any
    label: str
    doc: str
    unit: str = ""
    format: str = ""
    check: Callable[[Any], str] = lambda v: ""
    enum_labels: list[str] = field(default_factory=list)
    alias_of: str = ""  # a Lima1 name for another setting
    limits: tuple[Any, Any] | None = None
    """Inclusive (min, max): declared as the attribute's ``min_value``/``max_value`` (Jive
    and Taurus show them, Tango refuses a write outside with ``API_WAttrOutsideLimit``)
    and checked again by the device (``PARAM_ERROR``), as the database's copy of the
    attribute properties can be edited."""

    @property
    def key(self) -> str:
        return self.alias_of or self.name

    def problem(self, value: Any) -> str:
        """Why ``value`` cannot be stored ("" if it can)."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, not {value}"
        if self.limits is not None and not self.limits[0] <= value <= self.limits[1]:
            low, high = (_text(v) for v in self.limits)
            return f"must be within [{low}, {high}]{' ' + self.unit if self.unit else ''}, not {_text(value)}"
        return self.check(value)

    def declare(self) -> attribute:
        key, cast = self.key, _cast(self.dtype)

        def fget(device: Any) -> Any:
            return device.settings[key]

        async def fset(device: Any, value: Any) -> None:
            await device.change_setting(key, cast(value), self.problem(cast(value)))

        kwargs: dict[str, Any] = {
            "name": self.name,
            "dtype": self.dtype,
            "access": AttrWriteType.READ_WRITE,
            "memorized": not self.alias_of,
            "hw_memorized": not self.alias_of,
            "fget": fget,
            "fset": fset,
            "label": self.label,
            "doc": self.doc + (f" (Lima1 name of {self.alias_of})" if self.alias_of else ""),
            "unit": self.unit,
            "change_event_implemented": True,
            "change_event_detect": False,
            "read_green_mode": False,
        }
        if self.format:
            kwargs["format"] = self.format
        if self.enum_labels:
            kwargs["enum_labels"] = self.enum_labels
        if self.limits is not None:
            kwargs["min_value"], kwargs["max_value"] = (repr(v) for v in self.limits)
        return attribute(**kwargs)


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _cast(dtype: Any) -> Callable[[Any], Any]:
    return {int: int, float: float, bool: bool, str: str}.get(dtype, int)


def namespace(view_attrs: list[ViewAttr], settings: list[Setting]) -> dict[str, attribute]:
    """Every spec'd attribute, by name, to put in the device class body."""
    out = {a.name: a.declare() for a in view_attrs}
    out.update({s.name: s.declare() for s in settings})
    return out
