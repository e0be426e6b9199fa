"""Event subscriptions and pipeline erasures of this process, one at a time.

A Tango server deletes a device (``erasePipeline``) without a lock against its admin
device's requests, and an event subscription is such a request: it looks the server's
devices up by name in the list the deletion changes, and can crash the server. The
conductor therefore never subscribes while it erases, on any server: both go through
:func:`exclusive`, which holds one lock per event loop until the work has really ended
(a cancelled caller does not end a call already sent to a device).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


async def exclusive(work: Awaitable[T]) -> T:
    """Run ``work`` alone among the subscriptions and erasures of this event loop."""
    async with _lock():
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                with contextlib.suppress(BaseException):  # the request goes on: so does the lock
                    await task
            raise
