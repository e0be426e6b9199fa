"""Remote calls with a deadline, alone or fanned out in parallel.

Only device failures (``ConductorError`` from the ports, deadlines) become errors naming
the device; anything else is a bug of ours and propagates as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from .errors import ConductorError, DeviceTimeout

T = TypeVar("T")


class Named(Protocol):
    name: str


async def call(device: Named, action: str, coro: Awaitable[T], timeout: float) -> T:
    """One remote call with a deadline; device errors name the device."""
    try:
        return await asyncio.wait_for(coro, timeout)
    except ConductorError as exc:
        exc.device = exc.device or device.name
        raise
    except TimeoutError:
        raise DeviceTimeout(f"{action} took longer than {timeout:.1f} s", device.name) from None


async def run_to_end(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even when the caller is cancelled meanwhile (once or many
    times), then raise ``CancelledError``: calls already sent end on the devices anyway,
    and what they did must be known before it is undone."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait((task,))  # a cancelled wait leaves the task running
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: the caller that would see it is gone
        raise asyncio.CancelledError
    return task.result()


async def fan_out(
    action: str, calls: Sequence[tuple[Named, Callable[[], Awaitable[Any]]]], timeout: float
) -> list[ConductorError]:
    """Run calls in parallel; return the device errors (empty when all succeeded).

    Every call runs to its end (or deadline) before anything is raised, so that a bug in
    one branch does not leave the others unobserved."""
    results = await asyncio.gather(*(call(d, action, fn(), timeout) for d, fn in calls), return_exceptions=True)
    errors: list[ConductorError] = []
    for res in results:
        if isinstance(res, asyncio.CancelledError):
            raise res
        if isinstance(res, ConductorError):
            errors.append(res)
        elif isinstance(res, BaseException):
            raise res
    return errors
