"""After a software Trigger, the control's frame count followed closely until every frame
triggered so far is acquired: a step scan waits for each point's frame, and would
otherwise wait for the next tick. The counts reach the run through the system
(``acquired``); this only reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .errors import ConductorError
from .ports import BlockingControl, ControlPort
from .run import Run

TRIGGER_POLL_S = 0.00025
"""How often the control's frame count is read while a triggered frame is due."""
EARLY_S = 0.002
"""Reading starts this long before the triggered frame's exposure is over."""


def count_until(count_now: Callable[[], int], target: Callable[[], int], deadline: float) -> int:
    """Read the control's frame count (blocking, in a worker) until it reaches
    ``target()`` or the deadline passes; the last count."""
    while True:
        n = count_now()
        if n >= target() or time.monotonic() >= deadline:
            return n
        time.sleep(TRIGGER_POLL_S)


class TriggerFollower:
    """One follower per system; one follow at a time, its target raised by each Trigger."""

    def __init__(
        self,
        control: ControlPort,
        poll_timeout_s: float,
        current: Callable[[], Run | None],
        acquired: Callable[[Run, int], None],
    ) -> None:
        self.control = control
        self.poll_timeout_s = poll_timeout_s
        self._current = current
        self._acquired = acquired
        self._run = ""
        self._target = 0
        self._task: asyncio.Task[None] | None = None

    def triggered(self, run: Run) -> None:
        """A Trigger of ``run`` was sent: its frames are due."""
        if self._run != run.uuid:
            self._run, self._target = run.uuid, 0
        per_trigger = int(run.params["control"]["acq"].get("nb_frames_per_trigger", 1) or 1)
        self._target = max(self._target, run.progress.nb_frames_acquired) + per_trigger
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._follow(run))

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _follow(self, run: Run) -> None:
        expo = run.params["control"]["acq"].get("expo_time", 0) / 1e6
        control = self.control
        count_now = control.count_now if isinstance(control, BlockingControl) else None
        await asyncio.sleep(max(0.0, expo - EARLY_S))  # no frame before its exposure ends
        while self._current() is run and run.progress.nb_frames_acquired < self._target:
            deadline = time.monotonic() + expo + 1.0
            try:
                if count_now is not None:  # in a worker thread: one hop per frame, not per read
                    n = await asyncio.to_thread(count_until, count_now, lambda: self._target, deadline)
                else:
                    n = await self._count_until(deadline)
            except (ConductorError, TimeoutError):
                return
            if n <= run.progress.nb_frames_acquired or self._current() is not run:
                return  # no frame before the deadline: the ticks take over
            self._acquired(run, n)

    async def _count_until(self, deadline: float) -> int:
        while True:
            n = int(await asyncio.wait_for(self.control.nb_frames_acquired(), self.poll_timeout_s))
            if n >= self._target or time.monotonic() >= deadline:
                return n
            await asyncio.sleep(TRIGGER_POLL_S)
