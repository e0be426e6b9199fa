"""Run tracking: what the system makes of each observation of its devices.

One tick (:meth:`RunTracking.poll`) has the observer read the devices and the run's
counters, then applies what they say: the run's progress, its end (master file, then
``finished``), a device's failure (``failed``, the others stopped, the healthy receivers
drained), the watchdog, a run found on the devices to adopt. End-of-run work runs once
per run, and any failure of it turns the run FAULT with the error: no exception leaves a
run without a final state. Work for a run that is no longer the current one (Reset forgot
it) changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from .checkpoints import MasterWrites
from .completion import Completions, write_gapped
from .errors import ConductorError
from .fanout import call, fan_out
from .lima2 import DeviceState
from .ports import DatabaseCheck, Ports, ProcessingFinder
from .run import Run, Verdict
from .state import RunState
from .system_record import SystemRecord
from .topology import Topology
from .trigger_follow import TriggerFollower

logger = logging.getLogger(__name__)
TRACKED = (RunState.RUNNING, RunState.WAITING_FOR_PROC, RunState.STOPPING)


class RunTracking(SystemRecord):
    """The system's side of observation: it alone applies what the observer found."""

    def __init__(
        self,
        ports: Ports,
        topology: Topology,
        find_processing: ProcessingFinder,
        clock: Callable[[], float],
        check_database: DatabaseCheck | None,
        watchdog_s: float,
        checkpoint_s: float,
    ) -> None:
        super().__init__(ports, topology, find_processing, clock, check_database)
        self.watchdog_s = watchdog_s
        self.master_writes = MasterWrites(checkpoint_s)
        # failed runs' master files, completed once their unreachable receivers answer
        self.completions = Completions(write_gapped, self.note, self._completed, ports.poll_timeout_s)
        self.adoption_checked = False
        self._draining: Run | None = None
        self.trigger_follower = TriggerFollower(self.control, self.poll_timeout_s, lambda: self.run, self.acquired)

    async def poll(self, grace: float | None = None) -> None:
        """One tick of observation; ``grace``: the longest a read holds the tick (a read
        still under way then is taken by a later tick; ``None``: every read is waited for)."""
        observer = self.observer
        control_was_offline = observer.device_states[self.control.name] == DeviceState.OFFLINE
        await observer.poll_states(grace)
        if control_was_offline and observer.device_states[self.control.name] != DeviceState.OFFLINE:
            self.detector.forget()
        if self.detector.due():
            await self.detector.refresh(self.control, self.poll_timeout_s)
        if not self.adoption_checked and not self.offline_devices():
            self.adoption_checked = True
            await self._adopt_if_running()
        run = self.run
        if run is not None:
            observer.watch_processing(run)
        if run is not None and (self.running or run is self._draining):
            await self._observe_progress(run, grace)
            await self._track(run)
            if self.running:
                self.master_writes.checkpoint(run, self.clock())
        observer.observed = True
        self.publish()

    async def _observe_progress(self, run: Run, grace: float | None) -> None:
        """The run's counters, then its reduced data, then the frames ready (which dynamic
        dispatch learns from the reduced data). The processing devices' progress and
        ``finished`` flags are read before the reduced data, so that once they say finished
        (and the states say ended) the data read after is complete: the end of a run needs
        no further read."""
        progress, finished = await self.observer.read_progress(run, grace)
        # Reduced data only from the devices that answered just now: a call to a device
        # that does not answer holds a thread until its timeout, and piling them up tick
        # after tick would starve every other call; its rows wait on the device.
        t = self.poll_timeout_s
        try:
            await run.pipeline.fetch(lambda d, action, coro: call(d, action, coro, t), self.observer.answered)
        except ConductorError as exc:
            logger.warning("reduced data fetch: %s", exc)
        now = self.clock()
        rate = run.rate.add(now, progress.nb_frames_xferred) if self.running else 0.0
        if self.run is run:
            # a run's frame count never goes down: one read after a Trigger may be newer than this tick's
            acquired = max(progress.nb_frames_acquired, run.progress.nb_frames_acquired)
            progress = replace(progress, nb_frames_acquired=acquired)
            run.observe(replace(progress, frame_rate=rate, nb_frames_ready=run.frames_ready(progress)), finished, now)

    def triggered(self) -> None:
        """A Trigger was sent (by ``trigger``, or blocking from a request thread, which
        then calls this in the loop): the control's frame count is followed until the
        triggered frames are acquired."""
        if self.run is not None:
            self.trigger_follower.triggered(self.run)

    def acquired(self, run: Run, n: int) -> None:
        """The control's frame count, read right after a Trigger: at once in the view (a
        step scan waits for it); the rest follows at the next tick."""
        if self.run is run and n > run.progress.nb_frames_acquired:
            run.progress = replace(run.progress, nb_frames_acquired=n)
            self.publish()

    def _completed(self, run: Run, total: int, path: str) -> None:
        """A failed run's master file, completed later, is the run's from now on."""
        run.master_file = path or run.master_file
        run.timings["master_file_frames"] = total
        if run is self.run:
            self.publish()

    # -- adoption -----------------------------------------------------------------------
    async def _adopt_if_running(self) -> None:
        """At start-up (or after Init): a run found running or stopped on the devices,
        with a pipeline this conductor did not prepare, is adopted, not forgotten."""
        if self.run is not None or self.run_state != RunState.IDLE:
            return
        try:
            uid = await self.observer.adoptable()
            if uid is not None:
                await self.adopt(uid)
        except ConductorError as exc:
            self.note(f"could not adopt the run found on the devices: {exc}")
            logger.warning("adoption failed: %s", exc)

    async def adopt(self, uid: str) -> None:
        """Take over run ``uid`` found on the devices (prepared by a conductor that died,
        or before an ``Init``): params from the devices, tracked to its end."""
        run = await self.preparation().adopted_run(uid)
        if self.run is not None or self.run_state != RunState.IDLE or self.busy:
            return  # a command got there first
        self.replace_run(run)
        running = any(s == DeviceState.RUNNING for s in self.device_states.values())
        self.transition("adopted" if running else "adopted_stopped")
        run.stop_requested = not running
        self.note(f"adopted run {uid} found {'running' if running else 'stopped'} on the devices")
        logger.warning("adopted run %s found on the devices", uid)

    # -- the run's verdict ------------------------------------------------------------------
    async def _track(self, run: Run) -> None:
        """Advance ``run`` from what was observed: end, failure, watchdog. A run that a
        Reset forgot while this tick read it is left alone (its master file too)."""
        if self.run is not run:
            if self._draining is run:
                self._draining = None
            return
        if run is self._draining:
            await self._drain(run)
            return
        if self.run_state not in TRACKED or run.ending or self.busy:
            return  # a Start or Stop under way: its outcome is not anticipated
        waiting = self.run_state in (RunState.WAITING_FOR_PROC, RunState.STOPPING)
        stopping = self.run_state == RunState.STOPPING
        verdict = run.verdict(self.device_states, self.clock(), self.watchdog_s, waiting, stopping)
        if verdict == Verdict.DEVICE_FAILED:
            await self._fail(run)
        elif verdict == Verdict.ENDED:
            await self._end(run)
        elif verdict == Verdict.WATCHDOG:
            self.record_error(
                f"watchdog: no progress for {self.watchdog_s:.0f} s while {self.run_state.value}; "
                "processing never reported finished"
            )
            self.transition("watchdog")
            run.ending = True
            await self._write_master(run)
        elif verdict == Verdict.ACQUISITION_ENDED and self.run_state == RunState.RUNNING:
            self.transition("acquisition_ended")

    async def _end(self, run: Run) -> None:
        run.ending = True  # this tick's reads were made after the end: they are final
        ok = await self._write_master(run) is not None
        if self.run is not run or self.run_state not in TRACKED:
            return
        run.timings["run_s"] = self.clock() - run.timings.get("started", self.clock())
        if ok:  # a failed write has already failed the run
            self.transition("finished")

    async def _fail(self, run: Run) -> None:
        """A device failed: name it, fail the run, stop the others, then let them drain."""
        errors, bad = await self.observer.failures(run)
        for message in errors:
            self.record_error(message)
        self.transition("failed")
        others = [d for d in self.devices if d.name not in bad]
        self.record_all(await fan_out("Stop", [(d, d.stop) for d in others], self.timeout_s))
        self._draining = run
        run.last_change = self.clock()

    async def _drain(self, run: Run) -> None:
        """After a failure: once the healthy receivers have ended and finished processing
        (or made no progress for a while), write the master file of what they saved;
        receivers not read after the end get a completion (every frame saved, gaps listed)."""
        unread = self.observer.drained(run)
        if unread is None:
            return
        self._draining = None
        run.ending = True
        written = await self._write_master(run, gapped=True)
        if written is not None and unread and run.pipeline.saving is not None:
            self.completions.add(run, unread, written, int(run.timings.get("master_file_frames", 0)))

    async def _write_master(self, run: Run, gapped: bool = False) -> list[int] | None:
        """Write the master file(s) of the frames saved: the frames it lists as missing.
        On any failure record it, turn the run FAULT (if it still is the current one) and
        return ``None``."""
        try:
            written = await self.master_writes.write(run, gapped)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the run gets a final state
            if self.run is run:
                why = exc.reason if isinstance(exc, ConductorError) else type(exc).__name__
                self.record_error(f"master file: {why}: {exc}")
                if self.run_state in TRACKED:
                    self.transition("failed")
            else:
                logger.warning("master file of a forgotten run: %s", exc)
            return None
        if written is None:
            return []
        run.timings["master_file_frames"], run.master_file, missing = written
        return missing
