"""Finding a frame of a run: on which processing device, and in which file once saved.

Counters cached by the monitor can be up to a poll period old; a lookup that they refuse
is checked again against the devices' live counters before it fails, and ``-1`` (the
newest frame) is resolved from the devices' own ``last_frames``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from .devencoded import densify
from .errors import DeviceError, DeviceOffline, DeviceTimeout, NotFound, ParamError
from .fanout import call
from .lima2 import DENSE_SUFFIX, PipelineSpec
from .pipeline import read_saved_frame
from .progress import read_or
from .run import Run


def _sources(spec: PipelineSpec) -> str:
    names = ", ".join(s.name for s in spec.frame_sources) or "none"
    return f"sources: {names}; each also as <source>{DENSE_SUFFIX}"


def check_source(spec: PipelineSpec, source: str) -> None:
    """``ParamError`` listing the sources when ``source`` (maybe ``<source>:dense``) is
    none of the run's: a request for something that cannot exist, not a frame not there yet."""
    name = source[: -len(DENSE_SUFFIX)] if source.endswith(DENSE_SUFFIX) else source
    if not any(s.name == name for s in spec.frame_sources):
        raise ParamError(f"unknown frame source {source!r} ({_sources(spec)})")


def requested_source(run: Run | None, names: Sequence[str]) -> str:
    """The one frame source of a request's string list: none, several or an unknown one
    is a ``ParamError`` listing the run's sources (never one silently chosen)."""
    if len(names) != 1:
        listed = f" ({_sources(run.spec)})" if run is not None else ""
        raise ParamError(f"one frame source is needed, got {len(names)} ({list(names)!r}){listed}")
    if run is not None:
        check_source(run.spec, names[0])
    return names[0]


async def _newest(run: Run, source: str, timeout: float) -> tuple[int, int]:
    """Rank and global index of the newest frame of ``source`` on any processing device."""
    lasts = await asyncio.gather(*(read_or(d.last_frames(), {}, timeout) for d in run.processing))
    return newest_of(run, source, lasts)


def newest_of(run: Run, source: str, lasts: list[dict[str, int]]) -> tuple[int, int]:
    """Rank and global index of the newest frame of ``source``, from each processing
    device's ``last_frames`` (``{}`` for one that did not answer)."""
    try:
        key = run.spec.source(source).last_key
    except KeyError as exc:
        raise NotFound(str(exc.args[0])) from None
    newest, rank = max(((int(x.get(key, -1)), rank) for rank, x in enumerate(lasts)), default=(-1, 0))
    if newest < 0:
        raise NotFound(f"no {source} processed yet")
    return rank, newest


def newest_getter(run: Run, source: str, lasts: list[dict[str, int]]) -> tuple[str, str] | None:
    """(processing device, getter) to ask for its newest frame (``-1``), by the devices'
    ``last_frames``; None when the full path must say why."""
    try:
        rank, _ = newest_of(run, source, lasts)
    except NotFound:
        return None
    return run.pipeline.devices[rank].name, run.spec.source(source).getter


async def _live_processed(run: Run, timeout: float) -> list[int]:
    counter = run.spec.progress_counter
    cached = run.processed()
    live = await asyncio.gather(
        *(read_or(d.progress_counters(), {counter: c}, timeout) for d, c in zip(run.processing, cached, strict=True))
    )
    return [max(int(x.get(counter, 0)), c) for x, c in zip(live, cached, strict=True)]


def cached_where(run: Run, frame_idx: int, source: str) -> dict[str, Any] | None:
    """Where a frame is by the cached counters alone, or None when that takes a device
    read (``-1``, a frame newer than the counters, a rebuilt ``:dense`` frame). Pure and
    cheap: callable from any thread."""
    if frame_idx < 0 or source.endswith(DENSE_SUFFIX):
        return None
    try:
        return run.pipeline.lookup(frame_idx, run.processed(), run.saved(), source)
    except NotFound:
        return None


async def lookup(run: Run, frame_idx: int, source: str, timeout: float) -> dict[str, Any]:
    pipe = run.pipeline
    if frame_idx == -1:
        _, newest = await _newest(run, source, timeout)
        return pipe.lookup(newest, run.processed(), run.saved(), source, known=True)
    try:
        return pipe.lookup(frame_idx, run.processed(), run.saved(), source)
    except NotFound:
        if not run.processing:
            raise
        return pipe.lookup(frame_idx, await _live_processed(run, timeout), run.saved(), source)


async def get_frame(run: Run, frame_idx: int, source: str, timeout: float, poll_timeout: float) -> tuple[str, bytes]:
    """The frame as its processing device encodes it (passed through unchanged), or
    from its HDF5 file when the device no longer has it. ``-1`` asks the device that has
    the newest frame for its newest: no race with frames arriving meanwhile.

    ``<source>:dense`` returns any source as a DATA_ARRAY image: sparse frames rebuilt
    (SMX: the peaks only), vectors as 1 x 1 x length images."""
    check_source(run.spec, source)
    if source.endswith(DENSE_SUFFIX):
        raw = await get_frame(run, frame_idx, source[: -len(DENSE_SUFFIX)], timeout, poll_timeout)
        return await asyncio.to_thread(densify, raw)
    if frame_idx == -1:
        rank, _ = await _newest(run, source, poll_timeout)
        device = run.pipeline.devices[rank]
        getter = run.spec.source(source).getter
        try:
            return await call(device, getter, device.get_frame(getter, -1), timeout)
        except (DeviceError, DeviceOffline, DeviceTimeout) as exc:
            raise NotFound(f"no newest frame from {device.name}: {exc.message}") from None
    where = await lookup(run, frame_idx, source, poll_timeout)
    device = run.pipeline.devices[where["rank"]]
    try:
        return await call(device, where["command"], device.get_frame(where["command"], where["frame_idx"]), timeout)
    except (DeviceError, DeviceOffline, DeviceTimeout) as exc:
        if where["hdf5"] is None:
            raise NotFound(
                f"frame {where['frame_idx']} is no longer in the buffer of {where['receiver']} and was not saved "
                f"({exc.message})"
            ) from None
        return await asyncio.to_thread(read_saved_frame, where)
