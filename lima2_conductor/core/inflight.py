"""Reads that outlive the tick that started them.

A monitor tick reads every device; a device that does not answer (a host cut off, a
hung process) would make each tick last its read's deadline, and with it every other
device's progress. With :class:`InFlight`, a tick waits for each read at most a *grace*
time: a read still under way is left running (under its own deadline) and its reply is
taken by a later tick; a device is never read twice at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

PENDING: Any = object()
"""What :meth:`InFlight.read` gives for a read still under way after the grace time."""


class InFlight:
    """One read at a time per key, each tagged with what was true when it began."""

    def __init__(self) -> None:
        self._reads: dict[str, tuple[asyncio.Future[Any], int]] = {}

    async def read(
        self, key: str, start: Callable[[], Awaitable[Any]], timeout: float, grace: float | None, tag: int = 0
    ) -> tuple[Any, int]:
        """The reply of ``key``'s read (started now if none is under way) and the ``tag``
        it began with; ``PENDING`` if it is still under way after ``grace`` seconds.
        ``grace=None``: a read of its own, made now and waited for (a command wants what
        is true after it, not a reply to a read begun before). A failed read raises (its
        deadline: ``TimeoutError``)."""
        if grace is None:
            return await asyncio.wait_for(start(), timeout), tag
        entry = self._reads.get(key)
        if entry is None:
            entry = self._reads[key] = (asyncio.ensure_future(asyncio.wait_for(start(), timeout)), tag)
        task, began = entry
        if not task.done():
            await asyncio.wait({task}, timeout=grace)  # never cancels the read
            if not task.done():
                return PENDING, began
        del self._reads[key]
        return task.result(), began

    def pending(self, key: str) -> bool:
        entry = self._reads.get(key)
        return entry is not None and not entry[0].done()
