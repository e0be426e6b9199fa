"""What the conductor tells clients of its processing classes (``processing_classes``,
``ClassParamsSchema``, ``ClassDefaultParams``), over a receiver that offers some classes
badly: a missing or bad class is a value saying why, never an exception."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lima2_conductor.core import lima2
from lima2_conductor.core.errors import DeviceOffline, NotFound, ParamError
from lima2_conductor.core.processing_classes import class_defaults, class_entry, class_schemas, known_class, offers
from lima2_conductor.simulator.schemas import acq_params_schema, proc_params_schema


class Receiver:
    """A receiver port whose classes are published as ``schemas`` and ``versions`` say."""

    name = "rcv0"

    def __init__(self, schemas: dict[str, Any], versions: dict[str, Any]) -> None:
        self.schemas, self.versions = schemas, versions

    async def acq_schema(self) -> dict[str, Any]:
        return acq_params_schema(64, 48)

    async def proc_schema(self, class_name: str) -> dict[str, Any]:
        return _give(self.schemas.get(class_name, NotFound(f"no proc_params schema for class {class_name}")))

    async def proc_version(self, class_name: str) -> str:
        return _give(self.versions.get(class_name, NotFound(f"no Version for class {class_name}")))


def _give(value: Any) -> Any:
    if isinstance(value, BaseException):
        raise value
    return value


def every_class() -> Receiver:
    return Receiver(
        {n: proc_params_schema(n) for n in lima2.PIPELINES}, {n: lima2.CORE_VERSION for n in lima2.PIPELINES}
    )


def test_every_class_offered_in_its_version() -> None:
    got = asyncio.run(offers(every_class(), 1.0))  # type: ignore[arg-type]
    assert list(got) == list(lima2.PIPELINES)
    for name, entry in got.items():
        assert entry == {
            "offered": True,
            "version": lima2.CORE_VERSION,
            "default": name == lima2.DEFAULT_PIPELINE,
            "error": "",
        }


def test_missing_and_bad_classes_are_values_saying_why() -> None:
    rcv = every_class()
    del rcv.schemas[lima2.FAI.class_name], rcv.versions[lima2.FAI.class_name]
    rcv.schemas[lima2.SMX.class_name] = ValueError("Expecting value: line 1 column 1 (char 0)")
    rcv.versions[lima2.XPCS.class_name] = DeviceOffline("the Tango database does not answer")
    rcv.schemas[lima2.FAILING.class_name] = []
    got = asyncio.run(offers(rcv, 1.0))  # type: ignore[arg-type]
    fai, smx, xpcs, failing = (got[s.class_name] for s in (lima2.FAI, lima2.SMX, lima2.XPCS, lima2.FAILING))
    assert not fai["offered"] and fai["version"] == ""
    assert "no proc_params schema" in fai["error"] and "no Version" in fai["error"]
    assert not smx["offered"] and smx["version"] == lima2.CORE_VERSION and "not valid JSON" in smx["error"]
    assert xpcs["offered"] and xpcs["version"] == "" and "does not answer" in xpcs["error"]
    assert not failing["offered"] and "not a non-empty JSON object" in failing["error"]
    assert got[lima2.LEGACY.class_name]["error"] == ""


def test_a_receiver_slower_than_the_deadline_is_a_timeout_value() -> None:
    class Slow(Receiver):
        async def proc_version(self, class_name: str) -> str:
            await asyncio.sleep(10)
            return ""

    base = every_class()
    got = asyncio.run(offers(Slow(base.schemas, base.versions), 0.01))  # type: ignore[arg-type]
    assert all(e["offered"] and "longer than" in e["error"] for e in got.values())


def test_class_entry_of_a_good_class() -> None:
    assert class_entry("X", {"type": "object"}, "core-1.2.0") == {
        "offered": True,
        "version": "core-1.2.0",
        "default": False,
        "error": "",
    }


def test_an_unknown_class_names_the_known_ones() -> None:
    assert known_class("").class_name == lima2.DEFAULT_PIPELINE
    assert known_class(" LimaProcessingSmx ") is lima2.SMX
    with pytest.raises(ParamError, match="unknown processing class 'Saxs'.*LimaProcessingLegacy.*LimaProcessingFai"):
        known_class("Saxs")


def test_class_schemas_and_defaults() -> None:
    rcv = every_class()
    schemas = asyncio.run(class_schemas(rcv, rcv, lima2.SMX, 1.0))  # type: ignore[arg-type]
    assert schemas["processing"] == proc_params_schema(lima2.SMX.class_name)
    assert set(schemas) == {"control", "receiver", "processing", "masterfile_metadata"}
    settings = {"processing": {"saving": {"enabled": True, "base_path": "/data", "filename_prefix": "p"}}}
    smx = asyncio.run(class_defaults(rcv, rcv, lima2.SMX, settings, 1.0))["processing"]  # type: ignore[arg-type]
    assert "saving" not in smx and smx["class_name"] == lima2.SMX.class_name  # as a Prepare of SMX
    assert smx["saving_dense"]["base_path"] == "/data" and smx["saving_dense"]["filename_prefix"] == "p"
    assert smx["saving_sparse"]["filename_prefix"] == "p_sparse_frame"
    legacy = asyncio.run(class_defaults(rcv, rcv, lima2.LEGACY, settings, 1.0))["processing"]  # type: ignore[arg-type]
    assert legacy["saving"]["enabled"] and legacy["saving"]["filename_prefix"] == "p"
