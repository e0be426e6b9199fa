"""The threads' rules that a mistake would break silently, checked where it would.

A server runs one event loop, in one thread: it alone changes the system's state and
pushes events. Tango's request threads only read what the loop replaces whole, and
blocking work (h5py, the Tango database) runs in worker threads (``asyncio.to_thread``).
Broken, none of these rules fails a test by itself: a state change from another thread
races the loop's own changes, a push races the polling buffer (see
:mod:`lima2_conductor.server.pushed_values`), and blocking work in the loop stalls every
command, read and poll of the server until it ends (devices then seem offline). The
table is in ``docs/design.rst`` ("Threads").

A thread is the loop's when it runs an event loop: request threads and workers run none.
Pure asyncio, no Tango: the core calls these as well as the servers.
"""

from __future__ import annotations

import asyncio


class WrongThread(RuntimeError):
    """Work done in a thread whose rules forbid it (see the module's description)."""


def in_loop_thread() -> bool:
    """Whether the calling thread is running an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def require_loop_thread(what: str) -> None:
    """Raise :class:`WrongThread` unless called in the event loop's thread: for state
    that only the loop changes and for event pushes."""
    if not in_loop_thread():
        raise WrongThread(f"{what}: in the event loop's thread only")


def forbid_loop_thread(what: str) -> None:
    """Raise :class:`WrongThread` when called in the event loop's thread: for blocking
    work (h5py, a Tango database call), which belongs in a worker thread."""
    if in_loop_thread():
        raise WrongThread(f"{what}: blocks the event loop; run it in a worker thread (asyncio.to_thread)")
