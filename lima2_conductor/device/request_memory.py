"""Memory of large requests, handed back to the system once they have been served.

A large request (a Prepare of megabytes, refused or not) passes through several buffers
of its size: omniORB's, cppTango's, the Python string. They are freed when the request
ends, but glibc keeps what each request thread freed in that thread's arena, and raises
its mmap threshold after the first large free: a conductor that refused large Prepares
kept the memory they went through, never returned (figures: docs/benchmarks.rst,
``bench_server_tuning``). ``malloc_trim`` gives that free memory back, after a garbage
collection: a refused request's string is also held by the reference cycles of its
exception's traceback until the collector runs. Both are done once, in a worker thread,
shortly after the last large request (when its buffers have been freed), never on the
request's own path.

``LIMA2_CONDUCTOR_TRIM_AFTER_LARGE_REQUESTS=0`` turns it off.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
from collections.abc import Callable

logger = logging.getLogger(__name__)

LARGE_REQUEST = 1024 * 1024
"""A request of at least this many characters is followed by a trim."""
TRIM_DELAY_S = 0.5
"""Time for the request's reply to be sent and its buffers freed, and for a burst of
large requests to end (each one pushes the trim back)."""
OFF_SWITCH = "LIMA2_CONDUCTOR_TRIM_AFTER_LARGE_REQUESTS"


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = (ctypes.c_size_t,)
    return lambda: trim(0)


class RequestMemory:
    """Schedules one trim after a burst of large requests (event loop thread only)."""

    def __init__(self, environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
        enabled = environ.get(OFF_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")
        self._trim = _malloc_trim() if enabled else None
        self._pending: asyncio.TimerHandle | None = None
        self.trims = 0

    @property
    def enabled(self) -> bool:
        return self._trim is not None

    def served(self, size: int) -> None:
        """A request of ``size`` characters is being served (called from the loop)."""
        if self._trim is None or size < LARGE_REQUEST:
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = asyncio.get_running_loop().call_later(TRIM_DELAY_S, self._start)

    def _start(self) -> None:
        self._pending = None
        task = asyncio.ensure_future(asyncio.to_thread(self._run))
        task.add_done_callback(_log_failure)

    def _run(self) -> None:
        assert self._trim is not None
        gc.collect()
        self._trim()
        self.trims += 1

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("returning the memory of large requests: %s", task.exception())
