"""A daemon thread and a count of the work handed to it, waited for at exit.

Work that talks to Tango from a thread of its own (ending event subscriptions, database
requests) may hang as long as the peer does. Its thread is a daemon, so that such work
never holds up the process's exit, and the process waits for it at exit within a bound,
since a daemon thread returning from Tango into a finalised interpreter aborts the
process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class DaemonWork:
    """The daemon thread ``name`` running ``run`` (started on first use), and the count of
    work items handed to it and not yet finished."""

    def __init__(self, name: str, run: Callable[[], None]) -> None:
        self.name = name
        self._run = run
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._pending = 0

    def handed(self) -> None:
        """One more item for the thread (which starts now if it has not yet)."""
        with self._idle:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._pending += 1

    def finished(self) -> None:
        """One item done (or dropped) by the thread."""
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until every item handed has finished."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True
