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
import weakref
from collections.abc import Awaitable
from typing import TypeVar

from .fanout import run_to_end

T = TypeVar("T")

_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


async def exclusive(work: Awaitable[T]) -> T:
    """Run ``work`` alone among the subscriptions and erasures of this event loop.

    A cancelled caller (once or many times) still holds the lock until ``work`` has
    ended, then raises ``CancelledError``: the request already sent to a device goes on,
    and nothing else may subscribe or erase meanwhile."""
    async with _lock():
        return await run_to_end(work)
