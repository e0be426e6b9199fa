"""Write a Lima2 system's configuration into a Tango database (``lima2-tango-conductor register``).

The source is NosqlTangoDB's YAML (``tango_db/``: one document per server instance,
``{server, personal_name, device: [{class, tango_name, properties}]}``, or a class
document ``{class, properties}``); the target is the database of ``TANGO_HOST``, a real
DataBaseds or NosqlTangoDB alike, written through ``tango.Database``'s public API only
(``add_device``, ``put_device_property``, ``put_class_property``), so that a beamline
needs no ``tango_admin`` call of its own.

Idempotent: what the database already holds is compared first and left alone, so a
second run writes nothing. The class property ``AllowedAccessCmd`` (the commands a
read-only user of Tango access control may call) is merged with what is there: a site's
own additions survive an upgrade.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core import lima2

CONDUCTOR_CLASS = "Lima2Conductor"
CONDUCTOR_SERVER = "Lima2Conductor"
ALLOWED_ACCESS_CMD = "AllowedAccessCmd"

CONDUCTOR_READ_ONLY_COMMANDS: tuple[str, ...] = (
    "GetFrame",
    "Lookup",
    "GetReducedData",
    "GetInfo",
    "DefaultParams",
    "ParamsSchema",
    "ClassDefaultParams",
    "ClassParamsSchema",
)
"""The conductor's commands that change nothing (every other one acts on the run:
Prepare, Start, Trigger, Stop, Close, Reset; Init re-creates the device)."""


def processing_read_only_commands(spec: lima2.PipelineSpec) -> tuple[str, ...]:
    """A processing class's frame getters: reads. Its ``pop*`` commands are not: they
    hand each row out once, so a read-only client calling them would steal the
    conductor's reduced data."""
    return tuple(dict.fromkeys(s.getter for s in spec.frame_sources))


def read_only_commands() -> dict[str, tuple[str, ...]]:
    """``AllowedAccessCmd`` of every class the conductor uses or serves (the simulator's
    control and receiver classes have no command that only reads)."""
    out: dict[str, tuple[str, ...]] = {CONDUCTOR_CLASS: CONDUCTOR_READ_ONLY_COMMANDS}
    for name, spec in lima2.PIPELINES.items():
        if cmds := processing_read_only_commands(spec):
            out[name] = cmds
    return out


def default_sources() -> list[Path]:
    """The project's ``tango_db/`` when run from a source tree, else nothing (the
    built-in copy of the same system is used, see :func:`builtin_documents`)."""
    here = Path(__file__).resolve().parent.parent / "tango_db"
    return sorted(here.glob("*.yaml")) if here.is_dir() else []


def builtin_documents() -> list[dict[str, Any]]:
    """The simulated system of ``tango_db/`` (control, 2 receivers, conductor), as the
    launcher writes it: for an installed package, which has no ``tango_db/``."""
    from .launcher import Layout

    return list(Layout().yaml_docs().values())


def _as_strings(value: Any) -> list[str]:
    """A property value as Tango stores it: a list of strings."""
    items = value if isinstance(value, list | tuple) else [value]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in items]


@dataclass(frozen=True)
class DeviceEntry:
    name: str
    cls: str
    server: str
    properties: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Configuration:
    """What to write: devices (with their server and properties) and class properties."""

    devices: list[DeviceEntry] = field(default_factory=list)
    class_properties: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def add_document(self, doc: Any, origin: str = "") -> None:
        if isinstance(doc, list):
            for d in doc:
                self.add_document(d, origin)
            return
        if not isinstance(doc, dict):
            raise ValueError(f"{origin}: not a server or class document: {doc!r}")
        if "server" in doc:
            instance = doc.get("personal_name")
            if not instance:
                raise ValueError(f"{origin}: server {doc['server']} has no personal_name")
            server = f"{doc['server']}/{instance}"
            for dev in doc.get("device") or []:
                props = {k: _as_strings(v) for k, v in (dev.get("properties") or {}).items()}
                self.devices.append(DeviceEntry(dev["tango_name"], dev["class"], server, props))
        elif "class" in doc:
            props = {k: _as_strings(v) for k, v in (doc.get("properties") or {}).items()}
            self.class_properties.setdefault(doc["class"], {}).update(props)
        else:
            raise ValueError(f"{origin}: neither a server nor a class document")

    def allow_read_only_commands(self, classes: Iterable[str] | None = None) -> None:
        """Add ``AllowedAccessCmd`` for ``classes`` (default: every class this module
        knows), merged with any list the YAML gives."""
        known = read_only_commands()
        for cls in known if classes is None else classes:
            own = self.class_properties.setdefault(cls, {})
            own[ALLOWED_ACCESS_CMD] = _merge(own.get(ALLOWED_ACCESS_CMD, []), known.get(cls, ()))


def _merge(first: Sequence[str], second: Iterable[str]) -> list[str]:
    """Both lists, ``first``'s order first, no duplicate (Tango command names are case
    insensitive)."""
    out: list[str] = []
    seen: set[str] = set()
    for cmd in [*first, *second]:
        if cmd.lower() not in seen:
            seen.add(cmd.lower())
            out.append(cmd)
    return out


def load(paths: Sequence[Path | str] = ()) -> Configuration:
    """The configuration of YAML files or directories of them (default: ``tango_db/``)."""
    conf = Configuration()
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]) if p.is_dir() else [p])
    if not paths:
        files = default_sources()
        if not files:
            for doc in builtin_documents():
                conf.add_document(doc, "built-in")
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if doc is not None:
                conf.add_document(doc, str(f))
    if not conf.devices and not conf.class_properties:
        raise ValueError(f"nothing to register in {', '.join(map(str, files)) or 'the given files'}")
    return conf


def conductor_only(
    conf: Configuration,
    control: str | None = None,
    receivers: Sequence[str] | None = None,
    device: str | None = None,
    instance: str | None = None,
    topology: str | None = None,
) -> Configuration:
    """Only the conductor of ``conf``, pointed at existing Lima2 devices: the control
    and receivers of a real Lima2 system, registered by their own installation."""
    conductors = [d for d in conf.devices if d.cls == CONDUCTOR_CLASS]
    if not conductors:
        raise ValueError(f"no {CONDUCTOR_CLASS} device in the configuration")
    base = conductors[0]
    props = dict(base.properties)
    if control:
        props["control_device"] = [control]
    if receivers:
        props["receiver_devices"] = list(receivers)
    if topology:
        props["topology"] = [topology]
    elif receivers:
        props["topology"] = ["single" if len(receivers) == 1 else "round_robin"]
    server = f"{CONDUCTOR_SERVER}/{instance}" if instance else base.server
    out = Configuration([DeviceEntry(device or base.name, CONDUCTOR_CLASS, server, props)])
    out.class_properties = {k: v for k, v in conf.class_properties.items() if k == CONDUCTOR_CLASS}
    return out


@dataclass(frozen=True)
class Change:
    """One write: ``kind`` is ``device``, ``device property`` or ``class property``."""

    kind: str
    target: str
    name: str
    value: list[str]
    needed: bool  # False: the database holds it already

    def describe(self) -> str:
        state = "write" if self.needed else "unchanged"
        return f"[{state}] {self.kind} {self.target} {self.name} = {', '.join(self.value)}"


def _server_devices(db: Any, server: str) -> dict[str, str]:
    """Class of every device of ``server`` in the database, by lower-case name
    (``get_device_class_list``: the query DataBaseds and NosqlTangoDB both answer alike)."""
    listing = list(db.get_device_class_list(server))
    return {n.lower(): c for n, c in zip(listing[::2], listing[1::2], strict=True)}


def plan(conf: Configuration, db: Any | None) -> list[Change]:
    """Every write of ``conf``, each marked needed or not against ``db`` (all needed
    without a database)."""
    changes: list[Change] = []
    servers: dict[str, dict[str, str]] = {}
    for dev in conf.devices:
        if db is not None and dev.server not in servers:
            servers[dev.server] = _server_devices(db, dev.server)
        have = servers.get(dev.server, {}).get(dev.name.lower())
        needed = have is None or have.lower() != dev.cls.lower()
        changes.append(Change("device", dev.server, dev.name, [dev.cls], needed))
        current = db.get_device_property(dev.name, list(dev.properties)) if db is not None else {}
        for key, value in dev.properties.items():
            changes.append(Change("device property", dev.name, key, value, list(current.get(key, [])) != value))
    for cls, props in conf.class_properties.items():
        current = db.get_class_property(cls, list(props)) if db is not None else {}
        for key, value in props.items():
            old = list(current.get(key, []))
            if key == ALLOWED_ACCESS_CMD:
                value = _merge(value, old)  # keep a site's own additions
            changes.append(Change("class property", cls, key, value, old != value))
    return changes


def apply(changes: Sequence[Change], db: Any) -> int:
    """Write the needed changes; returns how many."""
    import tango

    for c in changes:
        if c.kind == "device" and c.needed:
            info = tango.DbDevInfo()
            info.name, info._class, info.server = c.name, c.value[0], c.target
            db.add_device(info)  # per device: NosqlTangoDB's DbAddServer fails on any input
    for c in changes:
        if c.needed and c.kind == "device property":
            db.put_device_property(c.target, {c.name: c.value})
        elif c.needed and c.kind == "class property":
            db.put_class_property(c.target, {c.name: c.value})
    return sum(c.needed for c in changes)


def register(conf: Configuration, db: Any, dry_run: bool = False) -> list[Change]:
    """Plan and (unless ``dry_run``) write ``conf`` into ``db``."""
    changes = plan(conf, db)
    if not dry_run:
        apply(changes, db)
    return changes
