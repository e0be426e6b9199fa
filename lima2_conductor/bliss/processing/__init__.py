"""Processing plugins of the Bliss controller: ``det.proc_plugin`` chooses one, which is
``det.processing`` (its settings) and gives its counters (Bliss's ``ProcPlugin``
names: legacy, smx, xpcs, failing, fai)."""

from __future__ import annotations

from typing import Any

import tango

from ..client import ConductorClient
from ..params import PLUGIN_CLASSES, class_refusal, parse_json
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


def refusal(client: ConductorClient, class_name: str) -> str:
    """Why the conductor of ``client`` cannot run ``class_name`` ("" if it can), as its
    ``processing_classes`` says: whether the Lima2 servers offer the class, in which
    version."""
    try:
        classes = parse_json(client.read("processing_classes"))
    except tango.DevFailed as exc:
        return f"cannot read which processing classes the conductor offers: {exc.args[0].desc}"
    return class_refusal(classes if isinstance(classes, dict) else {}, class_name)


__all__ = ["PLUGINS", "ProcessingPlugin", "make_plugin", "refusal"]
