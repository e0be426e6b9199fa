"""The Tango interface of a high-level PyTango device class, read from the class itself.

:func:`describe` lists the attributes, commands and device properties that the class
declares (through ``attribute``, ``command`` and ``device_property``), with their Tango
metadata, plus the ones every Tango device has (``State``, ``Status``, ``Init``).
:func:`to_rst` renders it; the documentation's ``tango-interface`` directive uses both,
so the reference follows the class as it changes.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

#: What every Tango device has besides what its class declares.
BUILTIN_ATTRIBUTES = {
    "State": ("DevState", "The device state (see the state mapping)"),
    "Status": ("DevString", "The device status: a readable summary of the state"),
}
BUILTIN_COMMANDS = {
    "Init": "Re-initialise the device: delete_device, then init_device (re-reads the properties)",
    "State": "Read the device state",
    "Status": "Read the device status",
}


@dataclass(frozen=True)
class AttributeDoc:
    name: str
    dtype: str
    shape: str
    access: str
    unit: str
    label: str
    display_level: str
    events: str
    memorized: bool
    min_value: str
    max_value: str
    enum_labels: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class CommandDoc:
    name: str
    in_type: str
    in_doc: str
    out_type: str
    out_doc: str
    display_level: str
    description: str


@dataclass(frozen=True)
class PropertyDoc:
    name: str
    dtype: str
    default: str
    description: str


@dataclass(frozen=True)
class DeviceDoc:
    class_name: str
    description: str
    attributes: list[AttributeDoc]
    commands: list[CommandDoc]
    properties: list[PropertyDoc]


def _name(value: Any) -> str:
    """``DevDouble`` for a CmdArgType, ``EXPERT`` for a DispLevel, ``str`` otherwise."""
    return str(getattr(value, "name", value))


def _events(attr: Any) -> str:
    kinds = []
    if getattr(attr, "change_event_implemented", False):
        kinds.append("change (pushed)")
    if getattr(attr, "data_ready_event_implemented", False):
        kinds.append("data ready")
    if getattr(attr, "archive_event_implemented", False):
        kinds.append("archive (pushed)")
    period = int(getattr(attr, "polling_period", -1) or -1)
    if period > 0:
        kinds.append(f"polled every {period} ms")
    return ", ".join(kinds)


def _shape(attr: Any) -> str:
    fmt = _name(attr.attr_format)
    if fmt == "SPECTRUM":
        return f"spectrum (max {attr.dim_x})"
    if fmt == "IMAGE":
        return f"image (max {attr.dim_x} x {attr.dim_y})"
    return "scalar"


def _labels(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split(",") if v)
    return tuple(str(v) for v in value)


def _attribute(attr: Any) -> AttributeDoc:
    prop = attr.att_prop
    return AttributeDoc(
        name=attr.attr_name,
        dtype=_name(attr.attr_type),
        shape=_shape(attr),
        access=_name(attr.attr_write),
        unit=str(prop.unit or ""),
        label=str(prop.label or ""),
        display_level=_name(attr.display_level),
        events=_events(attr),
        memorized=bool(attr.memorized),
        min_value=str(prop.min_value or ""),
        max_value=str(prop.max_value or ""),
        enum_labels=_labels(prop.enum_labels),
        description=" ".join(str(prop.description or "").split()),
    )


def _command(cls: type, name: str, spec: list[Any]) -> CommandDoc:
    (in_type, in_doc), (out_type, out_doc), extra = spec[0], spec[1], spec[2]
    method = getattr(cls, name, None)
    doc = inspect.getdoc(method) if method is not None and method.__doc__ else ""
    if doc and doc.startswith(f"'{name}' TANGO command"):
        doc = ""  # PyTango's placeholder for a command without a docstring
    return CommandDoc(
        name=name,
        in_type=_name(in_type),
        in_doc="" if _name(in_type) == "DevVoid" else " ".join(str(in_doc).split()),
        out_type=_name(out_type),
        out_doc="" if _name(out_type) == "DevVoid" else " ".join(str(out_doc).split()),
        display_level=_name(extra.get("Display level", "OPERATOR")),
        description=" ".join((doc or "").split()),
    )


def _default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    return str(value)


def describe(cls: type) -> DeviceDoc:
    """The interface of the high-level PyTango ``Device`` subclass ``cls``."""
    tango_class = cls.TangoClassClass  # type: ignore[attr-defined]
    attributes = [
        AttributeDoc(name, dtype, "scalar", "READ", "", "", "OPERATOR", "", False, "", "", (), text)
        for name, (dtype, text) in BUILTIN_ATTRIBUTES.items()
    ]
    attributes += [_attribute(a) for a in tango_class.attr_list.values()]
    commands = [
        CommandDoc(
            name,
            "DevVoid",
            "",
            "DevState" if name == "State" else "DevString" if name == "Status" else "DevVoid",
            "",
            "OPERATOR",
            text,
        )
        for name, text in BUILTIN_COMMANDS.items()
    ]
    commands += [_command(cls, name, spec) for name, spec in tango_class.cmd_list.items()]
    properties = [
        PropertyDoc(name, _name(spec[0]), _default(spec[2]), " ".join(str(spec[1]).split()))
        for name, spec in tango_class.device_property_list.items()
    ]
    return DeviceDoc(cls.__name__, inspect.getdoc(cls) or "", attributes, commands, properties)


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else ""


def _table(header: list[str], widths: list[int], rows: list[list[str]]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {' '.join(map(str, widths))}", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {_cell(row[0])}")
        lines.extend(f"     - {_cell(c)}" for c in row[1:])
    return [*lines, ""]


def _literal(text: str) -> str:
    return f"``{text}``" if text else ""


def to_rst(doc: DeviceDoc) -> list[str]:
    """reStructuredText: properties, attributes and commands tables (no section titles)."""
    lines: list[str] = []
    if doc.properties:
        lines += [".. rubric:: Device properties", ""]
        lines += _table(
            ["property", "type", "default", "description"],
            [20, 16, 14, 50],
            [[_literal(p.name), p.dtype, _literal(p.default), p.description] for p in doc.properties],
        )
    lines += [".. rubric:: Attributes", ""]
    rows = []
    for a in doc.attributes:
        typ = f"{a.dtype} {a.shape}" + (f" ({', '.join(a.enum_labels)})" if a.enum_labels else "")
        access = a.access + (", memorized" if a.memorized else "")
        limits = " ".join(
            t for t in (f"min {a.min_value}" if a.min_value else "", f"max {a.max_value}" if a.max_value else "") if t
        )
        rows.append(
            [
                _literal(a.name),
                typ,
                access,
                a.unit,
                a.label,
                a.display_level,
                a.events or "none",
                a.description + (f" [{limits}]" if limits else ""),
            ]
        )
    lines += _table(
        ["attribute", "type", "access", "unit", "label", "level", "events", "description"],
        [16, 14, 10, 5, 12, 8, 10, 25],
        rows,
    )
    lines += [".. rubric:: Commands", ""]
    lines += _table(
        ["command", "argument in", "argument out", "level", "description"],
        [14, 24, 20, 8, 34],
        [
            [
                _literal(c.name),
                f"{c.in_type}: {c.in_doc}" if c.in_doc else c.in_type,
                f"{c.out_type}: {c.out_doc}" if c.out_doc else c.out_type,
                c.display_level,
                c.description,
            ]
            for c in doc.commands
        ],
    )
    return lines
