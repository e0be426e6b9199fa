"""The processing classes the conductor conducts, as the receivers offer them: what a
client asks before choosing one (whether it is offered, its version, its params schema
and defaults), so that no client reads the Tango database or the conductor's internals.

Read through the receiver port, as a Prepare reads a class's schema; a class that is
missing or badly published is a value saying why, never an exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from . import lima2
from .errors import ConductorError, ParamError
from .fanout import call
from .nexus_tree import USER_METADATA_SCHEMA
from .params import deep_merge, defaults_from_schema
from .ports import ControlPort, DatabaseCheck, ReceiverPort
from .preparation import channel_overrides, read_schemas

T = TypeVar("T")


def known_class(class_name: str) -> lima2.PipelineSpec:
    """The spec of ``class_name`` (``""``: the default class); ``ParamError`` naming the
    classes the conductor conducts."""
    try:
        return lima2.pipeline(class_name.strip() or lima2.DEFAULT_PIPELINE)
    except KeyError as exc:
        raise ParamError(str(exc.args[0])) from None


def class_entry(class_name: str, schema: Any, version: str | BaseException) -> dict[str, Any]:
    """One class as ``processing_classes`` shows it: ``offered`` (its ``proc_params``
    schema is published, so a Prepare can use it), ``version`` (``""`` if unknown),
    ``default`` (the class of a Prepare that names none) and ``error`` (why it is not
    offered or has no version; ``""`` if nothing is wrong). ``schema`` and ``version``
    are what was read, or the exception reading them raised."""
    problems = []
    if isinstance(schema, BaseException):
        problems.append(f"proc_params schema: {_why(schema)}")
    elif not isinstance(schema, Mapping) or not schema:
        problems.append("proc_params schema: not a non-empty JSON object")
    if isinstance(version, BaseException):
        problems.append(f"Version: {_why(version)}")
    return {
        "offered": isinstance(schema, Mapping) and bool(schema),
        "version": version if isinstance(version, str) else "",
        "default": class_name == lima2.DEFAULT_PIPELINE,
        "error": "; ".join(problems),
    }


def _why(exc: BaseException) -> str:
    if isinstance(exc, ValueError) and not isinstance(exc, ConductorError):
        return f"not valid JSON ({exc})"
    return str(exc) or type(exc).__name__


async def _settled(work: Awaitable[T]) -> T | BaseException:
    """The result of ``work``, or the error a device, a deadline or bad JSON gave."""
    try:
        return await work
    except (ConductorError, TimeoutError, ValueError) as exc:
        return exc


async def offers(receiver: ReceiverPort, timeout_s: float) -> dict[str, dict[str, Any]]:
    """Every class the conductor conducts (:data:`lima2.PIPELINES`), as ``receiver``
    offers it (:func:`class_entry`); the classes are read at once, each with a deadline."""
    names = list(lima2.PIPELINES)
    schemas = [call(receiver, "read proc_params schema", receiver.proc_schema(n), timeout_s) for n in names]
    versions = [call(receiver, "read Version", receiver.proc_version(n), timeout_s) for n in names]
    read = await asyncio.gather(*(_settled(w) for w in (*schemas, *versions)))
    return {n: class_entry(n, read[k], read[len(names) + k]) for k, n in enumerate(names)}  # type: ignore[arg-type]


async def class_schemas(
    control: ControlPort,
    receiver: ReceiverPort,
    spec: lima2.PipelineSpec,
    timeout_s: float,
    check_database: DatabaseCheck | None = None,
) -> dict[str, Any]:
    """The schemas of a Prepare of class ``spec`` (control, receiver, processing,
    masterfile_metadata), read as a Prepare reads them (:func:`read_schemas`)."""
    ctl, rcv, proc = await read_schemas(control, receiver, spec.class_name, timeout_s, check_database)
    return {"control": ctl, "receiver": rcv, "processing": proc, "masterfile_metadata": USER_METADATA_SCHEMA}


async def class_defaults(
    control: ControlPort,
    receiver: ReceiverPort,
    spec: lima2.PipelineSpec,
    overrides: Mapping[str, Any],
    timeout_s: float,
    check_database: DatabaseCheck | None = None,
) -> dict[str, Any]:
    """The params a Prepare of class ``spec`` gets when it says nothing else: the schema
    defaults with ``overrides`` (the conductor's settings) merged in, the saving settings
    on every saving channel of the class, as a Prepare applies them."""
    o = channel_overrides(spec, dict(overrides))
    ctl_schema, _, proc_schema = await read_schemas(control, receiver, spec.class_name, timeout_s, check_database)
    return {
        "control": deep_merge(defaults_from_schema(ctl_schema), o.get("control", {})),
        "processing": deep_merge(defaults_from_schema(proc_schema), o.get("processing", {})),
    }
