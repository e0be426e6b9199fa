"""Stand-ins for the modules that Bliss 2.4 from PyPI imports but PyPI lacks.

ESRF Flint (``flint``), ``blisswriter.mapping`` and blissdata's
``lima_client_factory`` are only needed by the Flint GUI and the Bliss HDF5 writer,
neither of which the tests use (they run with the null writer). Test fixtures only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

STUBBED = ("flint", "blisswriter.mapping")


class _StubMeta(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(name)


class _Stub(metaclass=_StubMeta):
    """Any name, callable, subclassable; calling it raises (nothing here really works)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(name)


def _stub_class(name: str) -> type:
    return _StubMeta(name, (_Stub,), {})


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = _stub_class(name)
        setattr(self, name, value)
        return value


# The few stand-ins that Bliss calls even with the null writer.
FUNCTIONS: dict[str, dict[str, Any]] = {
    "blisswriter.mapping.h5map": {"scan_info_to_h5map": lambda *args, **kwargs: {}},
    "blisswriter.mapping.devices": {
        "all_devices_info": lambda *args, **kwargs: {},
        "get_primary_dataset_path": lambda *args, **kwargs: "",
    },
}


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if any(fullname == root or fullname.startswith(root + ".") for root in STUBBED):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        for name, value in FUNCTIONS.get(module.__name__, {}).items():
            setattr(module, name, value)


def install() -> None:
    """Install the stand-ins, then import Bliss (before anything imports blissdata)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    import bliss  # noqa: F401 - patches gevent first
    import blissdata.lima.client as lima_client

    if not hasattr(lima_client, "lima_client_factory"):

        def lima_client_factory(*args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("the Bliss HDF5 writer is not available in the tests")

        lima_client.lima_client_factory = lima_client_factory
