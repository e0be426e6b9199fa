"""Observation: the devices' states, the run's counters and the facts run tracking decides
on (which devices failed and why, whether a failed run has drained, a run to adopt).

The observer keeps what it saw of the devices, and nothing of the system: it is handed the
ports and a run, and returns what it found; the system applies it (:mod:`.run_tracking`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .background import Background
from .errors import ConductorError
from .exclusive import exclusive
from .fanout import call
from .inflight import PENDING, InFlight
from .lima2 import DeviceState, lima_what
from .ports import DevicePort, Ports
from .progress import Progress, read_or
from .run import Run

logger = logging.getLogger(__name__)
DRAIN_S = 3.0
"""After a device failure, how long the other receivers may go without progress while
they finish saving, before the master file is written with what they saved."""
MISSES_FOR_OFFLINE = 3
"""Consecutive unanswered polls before a device counts as offline: a process that died
answers no poll (caught within three periods), a transiently slow one misses one."""


class Observer:
    """The system's eyes: device states, progress, the facts of run tracking."""

    def __init__(self, ports: Ports, background: Background, clock: Callable[[], float]) -> None:
        self.ports = ports
        self.background = background  # where the event subscriptions it makes run
        self.clock = clock
        self.device_states: dict[str, DeviceState] = {d.name: DeviceState.OFFLINE for d in ports.devices}
        self.counts: dict[str, int] = {}  # frame counts read with the states
        self.misses: dict[str, int] = {}  # consecutive polls a device did not answer
        self.observed = False  # devices read at least once
        self._answered: list[bool] = []  # processing devices that answered the last progress read
        self.wake = asyncio.Event()
        self._watched_run: Run | None = None
        self._watching: asyncio.Task[Any] | None = None
        self.fresh = False  # states set by a command that just succeeded
        self._generation = 0
        self._assumed: dict[str, int] = {}  # device -> generation of its last assume()
        self.reads = InFlight()  # a tick's reads that the tick did not wait for

    def watch_processing(self, run: Run) -> asyncio.Task[Any]:
        """Subscribe to the events of ``run``'s processing devices, once per run; the
        task of that subscription (awaited by the post-Prepare clean-up)."""
        if run is not self._watched_run or self._watching is None:
            self._watched_run = run
            self._watching = self.background.spawn(self._watch_all(run))
        return self._watching

    async def _watch_all(self, run: Run) -> None:
        results = await exclusive(
            asyncio.gather(*(p.watch(self.notify) for p in run.processing), return_exceptions=True)
        )
        for p, result in zip(run.processing, results, strict=True):
            if isinstance(result, Exception):
                logger.info("%s: no events (%s); polled only", p.name, result)

    def notify(self) -> None:
        """A device reported a change: the monitor ticks now instead of at its period."""
        self.wake.set()

    async def news(self, delay: float, min_gap: float) -> None:
        """Return after ``delay``, or sooner when a device reports a change (reports are
        coalesced: at least ``min_gap`` apart)."""
        await asyncio.sleep(min_gap)
        if not self.wake.is_set():
            try:
                await asyncio.wait_for(self.wake.wait(), max(0.0, delay - min_gap))
            except TimeoutError:
                pass
        self.wake.clear()

    def assume(self, devices: Any, state: DeviceState) -> None:
        """A command succeeded on ``devices``: they are in the state the Lima2 life cycle
        gives (Prepare: PREPARED, Start: RUNNING, Reset: IDLE) until a poll says otherwise.
        This saves a round trip after each command; a poll begun before is not applied to
        them (its answer predates the command)."""
        self._generation += 1
        for d in devices:
            self.device_states[d.name] = state
            self._assumed[d.name] = self._generation
        self.fresh = True

    def offline_devices(self) -> list[str]:
        return [n for n, s in self.device_states.items() if s == DeviceState.OFFLINE]

    # -- reads ---------------------------------------------------------------------------
    async def poll_states(self, grace: float | None = None) -> dict[str, DeviceState]:
        """Read every device's ``acq_state`` (OFFLINE if it does not answer in time); a
        device whose read is still under way after ``grace`` keeps its state this time."""
        ports = self.ports

        async def one(d: DevicePort) -> tuple[DeviceState | None, int]:
            try:
                reply, began = await self.reads.read(
                    f"state:{d.name}", d.poll, ports.poll_timeout_s, grace, self._generation
                )
            except (ConductorError, TimeoutError):
                self.misses[d.name] = self.misses.get(d.name, 0) + 1
                if self.misses[d.name] < MISSES_FOR_OFFLINE:
                    return self.device_states[d.name], self._generation  # one slow answer is not a dead device
                return DeviceState.OFFLINE, self._generation
            if reply is PENDING:
                return None, began
            state, self.counts[d.name] = reply
            self.misses[d.name] = 0
            return DeviceState(state), began

        generation = self._generation
        devices = ports.devices
        states = await asyncio.gather(*(one(d) for d in devices))
        for d, (st, began) in zip(devices, states, strict=True):
            if st is None:
                continue  # still reading: no news
            if self._assumed.get(d.name, 0) > min(generation, began):
                self.wake.set()  # a command set its state meanwhile: read it again soon
                continue
            if self.device_states[d.name] == DeviceState.OFFLINE and st != DeviceState.OFFLINE:
                d.forget_cache()  # a restarted device may have a new schema
                self.background.spawn(exclusive(d.watch(self.notify)))
            self.device_states[d.name] = st
        return self.device_states

    @property
    def answered(self) -> list[bool]:
        """The processing devices that answered the last progress read."""
        return list(self._answered)

    async def read_progress(self, run: Run, grace: float | None = None) -> tuple[Progress, list[bool]]:
        """Read the counters of ``run`` (control and receivers: from the state poll just
        made; processing: their progress): the new progress (its ``frame_rate`` and
        ``nb_frames_ready`` left as is: the frames ready depend on the reduced data read
        after) and the processing devices' ``finished`` flags (:attr:`answered`: which of
        them answered)."""
        ports = self.ports
        t = ports.poll_timeout_s
        p = run.progress
        acquired = self.counts.get(ports.control.name, p.nb_frames_acquired)
        xferred = [self.counts.get(r.name, p.per_receiver("nb_frames_xferred", [r.name])[0]) for r in ports.receivers]
        previous = [{k: v["per_receiver"].get(r, 0) for k, v in p.counters.items()} for r in run.receivers]
        defaults = [(prev, f) for prev, f in zip(previous, run.proc_finished, strict=True)]
        replies = await asyncio.gather(
            *(self._progress(d, default, t, grace) for d, default in zip(run.processing, defaults, strict=True))
        )
        counters = [c for c, _ in replies]
        finished = [f for _, f in replies]
        self._answered = [reply is not default for reply, default in zip(replies, defaults, strict=True)]
        new = p.with_counters(
            acquired,
            dict(zip(run.receivers, xferred, strict=True)),
            list(zip(run.receivers, counters, strict=True)),
            run.spec.progress_counter,
            run.spec.saved_counter,
        )
        return new, list(finished)

    async def _progress(self, d: Any, default: Any, timeout: float, grace: float | None) -> Any:
        """A processing device's progress, or ``default`` when it fails or is still
        being read after ``grace`` (liveness is the state poll's job)."""
        reply, _ = await self.reads.read(
            f"progress:{d.name}", lambda: read_or(d.progress(), default, timeout), timeout + 1.0, grace
        )
        return default if reply is PENDING else reply

    # -- facts of run tracking -------------------------------------------------------------
    async def failures(self, run: Run) -> tuple[list[str], list[str]]:
        """The devices of a failed run: one error per bad device (a faulty receiver's
        ``last_error`` with it), and the names of the bad ones."""
        ports = self.ports
        bad = run.bad_devices(self.device_states)
        errors = []
        for name, state in bad.items():
            detail = ""
            device = next((d for d in ports.receivers if d.name == name), None)
            if state == DeviceState.FAULT and device is not None:
                try:
                    detail = lima_what(await call(device, "read last_error", device.last_error(), ports.poll_timeout_s))
                except ConductorError:
                    detail = ""
            what = "is offline" if state == DeviceState.OFFLINE else f"went {state.name}"
            errors.append(f"{name} {what}" + (f": {detail}" if detail else ""))
        return errors, list(bad)

    def drained(self, run: Run) -> list[int] | None:
        """After a failure: ``None`` while the healthy receivers still end and finish
        processing (at most ``DRAIN_S`` without progress); then the ranks of the receivers
        whose saved counts were not read after the end (their master file needs a
        completion)."""
        states = self.device_states
        healthy = [
            i for i, r in enumerate(run.receivers) if states.get(r) not in (DeviceState.OFFLINE, DeviceState.FAULT)
        ]
        ended = all(states.get(r) != DeviceState.RUNNING for r in run.receivers)
        finished = all(run.proc_finished[i] for i in healthy if i < len(run.proc_finished))
        # the saved counts are final only if read after the end: from every device that can answer
        answered = all(
            ok or states.get(r) == DeviceState.OFFLINE for r, ok in zip(run.receivers, self._answered, strict=False)
        )
        if not (ended and finished and answered) and self.clock() - run.last_change <= DRAIN_S:
            return None
        return [
            i
            for i, (r, ok) in enumerate(zip(run.receivers, self._answered, strict=False))
            if not ok or states.get(r) == DeviceState.OFFLINE
        ]

    async def adoptable(self) -> str | None:
        """The UUID of a run found running or stopped on the devices, with a pipeline every
        receiver holds (the newest of them): one this conductor did not prepare. Raises
        ``ConductorError`` when the receivers cannot tell."""
        ports = self.ports
        if not set(self.device_states.values()) & {DeviceState.RUNNING, DeviceState.STOPPED}:
            return None
        held = [set(await call(r, "read pipelines", r.pipelines(), ports.timeout_s)) for r in ports.receivers]
        common = set.intersection(*held) if held else set()
        if not common:
            return None
        first = await call(ports.receivers[0], "read pipelines", ports.receivers[0].pipelines(), ports.timeout_s)
        return [u for u in first if u in common][-1]
