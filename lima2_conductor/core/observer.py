"""Observation and run tracking: one tick reads the devices, updates the run's progress,
applies the run's verdict (ended, failed, watchdog) and keeps the master file current.

End-of-run work runs once per run, and any failure of it turns the run FAULT with the
error: no exception can leave a run without a final state. Work for a run that is no
longer the current one (Reset forgot it) changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from .errors import ConductorError
from .exclusive import exclusive
from .fanout import call, fan_out
from .handles import ObservedSystem
from .inflight import PENDING, InFlight
from .lima2 import DeviceState, lima_what
from .progress import read_or
from .run import Run, Verdict
from .state import RunState

logger = logging.getLogger(__name__)
TRACKED = (RunState.RUNNING, RunState.WAITING_FOR_PROC, RunState.STOPPING)
DRAIN_S = 3.0
"""After a device failure, how long the other receivers may go without progress while
they finish saving, before the master file is written with what they saved."""
MISSES_FOR_OFFLINE = 3
"""Consecutive unanswered polls before a device counts as offline: a process that died
answers no poll (caught within three periods), a transiently slow one misses one."""


class Observer:
    """The system's eyes: device states, progress, run tracking, checkpoints."""

    def __init__(self, system: ObservedSystem, watchdog_s: float, checkpoint_s: float) -> None:
        self.system = system
        self.watchdog_s = watchdog_s
        self.checkpoint_s = checkpoint_s
        self.device_states: dict[str, DeviceState] = {d.name: DeviceState.OFFLINE for d in system.devices}
        self.counts: dict[str, int] = {}  # frame counts read with the states
        self.misses: dict[str, int] = {}  # consecutive polls a device did not answer
        self.observed = False  # devices read at least once
        self.adoption_checked = False
        self._checkpoint: asyncio.Task[Any] | None = None
        self._checkpoint_at = 0.0
        self._checkpoint_saved: list[int] = []
        self._draining: Run | None = None
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
            self._watching = self.system.spawn(self._watch_all(run))
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

    # -- one tick ------------------------------------------------------------------------
    async def tick(self, grace: float | None = None) -> None:
        """One observation; ``grace``: the longest a read holds the tick (a read still
        under way then is taken by a later tick; ``None``: every read is waited for)."""
        s = self.system
        before = dict(self.device_states)
        await self.poll_states(grace)
        if (
            before.get(s.control.name) == DeviceState.OFFLINE
            and self.device_states[s.control.name] != DeviceState.OFFLINE
        ):
            s.detector.forget()
        if s.detector.due():
            await s.detector.refresh(s.control, s.poll_timeout_s)
        if not self.adoption_checked and not s.offline_devices():
            self.adoption_checked = True
            await self.adopt_if_running()
        run = s.run
        if run is not None:
            self.watch_processing(run)
        if run is not None and (s.running or run is self._draining):
            await self.poll_progress(run, grace)
            await self.track(run)
            self.checkpoint(run)
        self.observed = True

    async def poll_states(self, grace: float | None = None) -> dict[str, DeviceState]:
        """Read every device's ``acq_state`` (OFFLINE if it does not answer in time); a
        device whose read is still under way after ``grace`` keeps its state this time."""
        s = self.system

        async def one(d: Any) -> tuple[DeviceState | None, int]:
            try:
                reply, began = await self.reads.read(
                    f"state:{d.name}", d.poll, s.poll_timeout_s, grace, self._generation
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
        states = await asyncio.gather(*(one(d) for d in s.devices))
        for d, (st, began) in zip(s.devices, states, strict=True):
            if st is None:
                continue  # still reading: no news
            if self._assumed.get(d.name, 0) > min(generation, began):
                self.wake.set()  # a command set its state meanwhile: read it again soon
                continue
            if self.device_states[d.name] == DeviceState.OFFLINE and st != DeviceState.OFFLINE:
                d.forget_cache()  # a restarted device may have a new schema
                s.spawn(exclusive(d.watch(self.notify)))
            self.device_states[d.name] = st
        return self.device_states

    async def poll_progress(self, run: Run, grace: float | None = None) -> None:
        """Read the counters of ``run`` (control and receivers: from the state poll just
        made; processing: their progress), then its reduced data. The processing devices'
        progress and ``finished`` flags are read before the reduced data, so that once they
        say finished (and the states say ended) the data read after is complete: the end of
        a run needs no further read."""
        s = self.system
        t = s.poll_timeout_s
        p = run.progress
        acquired = self.counts.get(s.control.name, p.nb_frames_acquired)
        xferred = [self.counts.get(r.name, p.per_receiver("nb_frames_xferred", [r.name])[0]) for r in s.receivers]
        previous = [{k: v["per_receiver"].get(r, 0) for k, v in p.counters.items()} for r in run.receivers]
        defaults = [(prev, f) for prev, f in zip(previous, run.proc_finished, strict=True)]
        replies = await asyncio.gather(
            *(self._progress(d, default, t, grace) for d, default in zip(run.processing, defaults, strict=True))
        )
        counters = [c for c, _ in replies]
        finished = [f for _, f in replies]
        # Reduced data only from the devices that answered just now: a call to a device
        # that does not answer holds a thread until its timeout, and piling them up tick
        # after tick would starve every other call; its rows wait on the device.
        answered = [reply is not default for reply, default in zip(replies, defaults, strict=True)]
        self._answered = answered
        try:
            await run.pipeline.fetch(lambda d, action, coro: call(d, action, coro, t), answered)
        except ConductorError as exc:
            logger.warning("reduced data fetch: %s", exc)
        new = p.with_counters(
            acquired,
            dict(zip(run.receivers, xferred, strict=True)),
            list(zip(run.receivers, counters, strict=True)),
            run.spec.progress_counter,
            run.spec.saved_counter,
        )
        processed = new.per_receiver(run.spec.progress_counter, run.receivers)
        ready = run.pipeline.locator.frames_ready(processed)
        if run.nb_frames:
            ready = min(ready, run.nb_frames)
        now = s.clock()
        rate = run.rate.add(now, new.nb_frames_xferred) if s.running else 0.0
        if s.run is run:
            run.observe(replace(new, nb_frames_ready=ready, frame_rate=rate), list(finished), now)

    async def _progress(self, d: Any, default: Any, timeout: float, grace: float | None) -> Any:
        """A processing device's progress, or ``default`` when it fails or is still
        being read after ``grace`` (liveness is the state poll's job)."""
        reply, _ = await self.reads.read(
            f"progress:{d.name}", lambda: read_or(d.progress(), default, timeout), timeout + 1.0, grace
        )
        return default if reply is PENDING else reply

    # -- run tracking -------------------------------------------------------------------
    async def track(self, run: Run) -> None:
        """Advance ``run`` from what was observed: end, failure, watchdog."""
        s = self.system
        if run is self._draining:
            await self._drain(run)
            return
        if s.run_state not in TRACKED or run.ending or s.busy:
            return  # a Start or Stop under way: its outcome is not anticipated
        waiting = s.run_state in (RunState.WAITING_FOR_PROC, RunState.STOPPING)
        stopping = s.run_state == RunState.STOPPING
        verdict = run.verdict(self.device_states, s.clock(), self.watchdog_s, waiting, stopping)
        if verdict == Verdict.DEVICE_FAILED:
            await self._fail(run)
        elif verdict == Verdict.ENDED:
            await self._end(run)
        elif verdict == Verdict.WATCHDOG:
            s.record_error(
                f"watchdog: no progress for {self.watchdog_s:.0f} s while {s.run_state.value}; "
                "processing never reported finished"
            )
            s.transition("watchdog")
            run.ending = True
            await self._write_master(run)
        elif verdict == Verdict.ACQUISITION_ENDED and s.run_state == RunState.RUNNING:
            s.transition("acquisition_ended")

    async def _end(self, run: Run) -> None:
        s = self.system
        run.ending = True  # this tick's reads were made after the end: they are final
        ok = await self._write_master(run)
        if s.run is not run or s.run_state not in TRACKED:
            return
        run.timings["run_s"] = s.clock() - run.timings.get("started", s.clock())
        if ok:  # a failed write has already failed the run
            s.transition("finished")

    async def _fail(self, run: Run) -> None:
        """A device failed: name it, fail the run, stop the others, then let them drain."""
        s = self.system
        bad = run.bad_devices(self.device_states)
        for name, state in bad.items():
            detail = ""
            device = next((d for d in s.receivers if d.name == name), None)
            if state == DeviceState.FAULT and device is not None:
                try:
                    detail = lima_what(await call(device, "read last_error", device.last_error(), s.poll_timeout_s))
                except ConductorError:
                    detail = ""
            what = "is offline" if state == DeviceState.OFFLINE else f"went {state.name}"
            s.record_error(f"{name} {what}" + (f": {detail}" if detail else ""))
        s.transition("failed")
        others = [d for d in s.devices if d.name not in bad]
        for e in await fan_out("Stop", [(d, d.stop) for d in others], s.timeout_s):
            s.record_error(str(e))
        self._draining = run
        run.last_change = s.clock()

    async def _drain(self, run: Run) -> None:
        """After a failure: once the healthy receivers have ended and finished processing
        (or made no progress for ``DRAIN_S``), write the master file of what they saved."""
        s = self.system
        healthy = [
            i
            for i, r in enumerate(run.receivers)
            if self.device_states.get(r) not in (DeviceState.OFFLINE, DeviceState.FAULT)
        ]
        ended = all(self.device_states.get(r) != DeviceState.RUNNING for r in run.receivers)
        finished = all(run.proc_finished[i] for i in healthy if i < len(run.proc_finished))
        # the saved counts are final only if read after the end: from every device that can answer
        answered = all(
            ok or self.device_states.get(r) == DeviceState.OFFLINE
            for r, ok in zip(run.receivers, self._answered, strict=False)
        )
        if (ended and finished and answered) or s.clock() - run.last_change > DRAIN_S:
            self._draining = None
            run.ending = True
            # every frame saved, gaps listed; receivers not read now get a completion
            unread = [
                i
                for i, (r, ok) in enumerate(zip(run.receivers, self._answered, strict=False))
                if not ok or self.device_states.get(r) == DeviceState.OFFLINE
            ]
            if await self._write_master(run, gapped=True) and unread and run.pipeline.saving is not None:
                s.completions.add(run, unread, run.pipeline.missing, int(run.timings.get("master_file_frames", 0)))

    async def _write_master(self, run: Run, gapped: bool = False) -> bool:
        """Write the master file(s) of the frames saved; on any failure record it, turn the
        run FAULT (if it still is the current one) and return False."""
        s = self.system
        if run.pipeline.saving is None:
            return True
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
            self._checkpoint = None
        try:
            total, path = await asyncio.to_thread(run.pipeline.write_master, run.saved(), gapped)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the run gets a final state
            if s.run is run:
                why = exc.reason if isinstance(exc, ConductorError) else type(exc).__name__
                s.record_error(f"master file: {why}: {exc}")
                if s.run_state in TRACKED:
                    s.transition("failed")
            else:
                logger.warning("master file of a forgotten run: %s", exc)
            return False
        run.master_file = path
        run.timings["master_file_frames"] = total
        return True

    def checkpoint(self, run: Run) -> None:
        """While running, rewrite the master file every ``checkpoint_s`` (in a thread): if
        the conductor dies mid-run, the frames saved so far stay reachable."""
        s = self.system
        if run.pipeline.saving is None or not s.running or run.ending:
            return
        if s.clock() - self._checkpoint_at < self.checkpoint_s:
            return
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        saved = run.saved()
        if saved == self._checkpoint_saved or not any(saved):
            return
        self._checkpoint_at = s.clock()
        self._checkpoint_saved = saved
        self._checkpoint = asyncio.ensure_future(asyncio.to_thread(run.pipeline.write_master, saved))
        self._checkpoint.add_done_callback(_log_failure)

    # -- adoption -----------------------------------------------------------------------
    async def adopt_if_running(self) -> None:
        """At start-up (or after Init): a run found running or stopped on the devices,
        with a pipeline this conductor did not prepare, is adopted, not forgotten."""
        s = self.system
        states = set(self.device_states.values())
        if s.run is not None or s.run_state != RunState.IDLE or not states & {DeviceState.RUNNING, DeviceState.STOPPED}:
            return
        try:
            held = [set(await call(r, "read pipelines", r.pipelines(), s.timeout_s)) for r in s.receivers]
            common = set.intersection(*held) if held else set()
            if not common:
                return
            first = await call(s.receivers[0], "read pipelines", s.receivers[0].pipelines(), s.timeout_s)
            uid = [u for u in first if u in common][-1]
            await s.adopt(uid)
        except ConductorError as exc:
            s.note(f"could not adopt the run found on the devices: {exc}")
            logger.warning("adoption failed: %s", exc)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("master file checkpoint: %s", task.exception())
