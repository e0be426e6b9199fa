"""Processing plugins of the Bliss controller: ``det.proc_plugin`` chooses one, which is
``det.processing`` (its settings) and gives its counters (Bliss's ``ProcPlugin``
names: legacy, smx, xpcs, failing, fai)."""

from __future__ import annotations

from typing import Any

import tango

from ..params import ALLOWED_VERSIONS, PLUGIN_CLASSES, version_allowed
from .common import ProcessingPlugin
from .fai import Fai
from .failing import Failing
from .legacy import Legacy
from .smx import Smx
from .xpcs import Xpcs

PLUGINS: dict[str, type[ProcessingPlugin]] = {p.name: p for p in (Legacy, Smx, Xpcs, Failing, Fai)}
assert set(PLUGINS) == set(PLUGIN_CLASSES)


def make_plugin(name: str, det: Any) -> ProcessingPlugin:
    """Plugin ``name`` of ``det``; Legacy keeps the Beacon keys of the earlier Legacy-only
    controller, the others have keys of their own."""
    base = f"lima2_conductor:{det.name}"
    return PLUGINS[name](det, base if name == "legacy" else f"{base}:{name}")


def refusal(proxy: tango.DeviceProxy, class_name: str) -> str:
    """Why the conductor behind ``proxy`` cannot run ``class_name`` ("" if it can): the
    conductor prepares a class from its ``proc_params`` schema and ``Version`` in the
    Tango database, where the Lima2 servers publish the classes they run."""
    try:
        db = tango.Database(proxy.get_db_host(), int(proxy.get_db_port()))
        version = list(db.get_class_property(class_name, "Version").get("Version", []))
        schema = db.get_class_attribute_property(class_name, "proc_params").get("proc_params", {})
    except tango.DevFailed as exc:
        return f"cannot read what the Tango database offers for {class_name}: {exc.args[0].desc}"
    if not schema.get("schema"):
        return f"no Lima2 server offers {class_name} (no proc_params schema in the Tango database)"
    if not version or not version_allowed(str(version[0])):
        found = str(version[0]) if version else "none"
        return f"{class_name} version {found} is not one of {', '.join(ALLOWED_VERSIONS)}"
    return ""


__all__ = ["PLUGINS", "ProcessingPlugin", "make_plugin", "refusal"]
