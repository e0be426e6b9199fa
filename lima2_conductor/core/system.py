"""``AcquisitionSystem``: one control and N receivers conducted as one detector.

The system is the only thing that changes its state (:mod:`.system_record`), through the
state machine only: the commands here, the observations in :mod:`.run_tracking`. Commands
are checked against the state machine and conflicting ones are rejected, never queued:
asyncio servers interleave commands at every ``await``. Every remote call has a deadline
(:mod:`.fanout`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .claim import Claim
from .errors import ConductorError, MultiDeviceError, NotFound, OperationNotAllowed
from .fanout import call, fan_out, run_to_end
from .lima2 import DeviceState
from .lookup import get_frame, lookup
from .ports import ControlPort, DatabaseCheck, DevicePort, Ports, ProcessingFinder, ReceiverPort
from .run import Run
from .run_tracking import RunTracking
from .state import RunState
from .topology import Topology

logger = logging.getLogger(__name__)
T = TypeVar("T")


class AcquisitionSystem(RunTracking):
    """Prepare, start, trigger, stop, close and reset a distributed acquisition."""

    def __init__(
        self,
        control: ControlPort,
        receivers: Sequence[ReceiverPort],
        topology: Topology,
        find_processing: ProcessingFinder,
        timeout_s: float = 3.0,
        poll_timeout_s: float = 0.5,
        watchdog_s: float = 30.0,
        checkpoint_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        check_database: DatabaseCheck | None = None,
    ) -> None:
        ports = Ports(control, list(receivers), timeout_s, poll_timeout_s)
        super().__init__(ports, topology, find_processing, clock, check_database, watchdog_s, checkpoint_s)
        self._erase_task: asyncio.Task[Any] | None = None
        self._preparing: Claim | None = None  # the Prepare under way, until it has really ended

    async def run_command(self, work: Awaitable[T]) -> T:
        """Run a client's state-changing command and publish the snapshot it leaves: the
        devices' states come from the command's success (the Lima2 life cycle), or after a
        failure from reading them, so that State is current when it returns."""
        observer = self.observer
        observer.fresh = False
        try:
            return await work
        except BaseException:
            observer.fresh = False
            raise
        finally:
            if not observer.fresh:
                await observer.poll_states()
            observer.fresh = False
            self.publish()

    def refuse(self, command: str, error: ConductorError) -> None:
        """``command`` was refused before it began (its arguments): recorded and published."""
        self.record_error(f"{command} refused: {error}")
        self.publish()

    async def _fan_out(
        self, action: str, calls: Sequence[tuple[Any, Callable[[], Awaitable[Any]]]]
    ) -> list[ConductorError]:
        return await fan_out(action, calls, self.timeout_s)

    def _assume_done(self, errors: Sequence[ConductorError], state: DeviceState) -> None:
        """The devices whose command succeeded are now in ``state``."""
        failed = {e.device for e in errors}
        self.observer.assume([d for d in self.devices if d.name not in failed], state)

    # -- Prepare ---------------------------------------------------------------------
    async def prepare(self, user_params: dict[str, Any], overrides: dict[str, Any] | None = None) -> str:
        """Validate, fan out Prepare, roll back on partial failure; return the UUID.

        The work runs in its own task under a :class:`~lima2_conductor.core.claim.Claim`: Stop and Reset cancel it and
        wait for its end (rollback included); its outcome is applied by the task itself,
        only while its claim is the current one."""
        self.transition("Prepare")
        if self._erase_task is not None:
            self._erase_task.cancel()  # it would erase the pipeline this Prepare makes
        claim = Claim("Prepare")
        before, self._claim, self._preparing = self._preparing, claim, claim
        task = claim.task = asyncio.ensure_future(self._prepare(claim, before, user_params, overrides or {}))
        task.add_done_callback(functools.partial(self._prepare_ended, claim))  # first: before its caller wakes
        try:
            return await task  # a cancelled caller cancels the task (and waits for its rollback)
        except asyncio.CancelledError:
            if claim.cancelled:
                raise OperationNotAllowed("Prepare was cancelled (by Stop, Reset or Init)") from None
            raise

    async def _prepare(
        self, claim: Claim, before: Claim | None, user: dict[str, Any], overrides: dict[str, Any]
    ) -> str:
        preparation = self.preparation()
        try:
            if before is not None:  # one Prepare at a time: the previous one has really ended
                await before.ended.wait()
            t0 = self.clock()
            try:
                run = await preparation.prepare_run(user, overrides)
            finally:
                self.record_all(preparation.rollback_errors)
            self.timings["prepare_phases_ms"] = preparation.phases_ms
            if claim.cancelled or self._claim is not claim:  # overtaken: nothing of it may stay
                await run_to_end(self.rollback(self.devices))
                raise asyncio.CancelledError
            self._claim = None
            self.replace_run(run)
            self.errors.clear()
            self.transition("prepared")
            self.timings["prepare_s"] = self.clock() - t0
            self._erase_task = self.spawn(self._after_prepare(run))
            return run.uuid
        except BaseException as exc:
            # a Stop during the rollback of a failed Prepare cancels it: its reason stays
            failure = exc if isinstance(exc, ConductorError) else preparation.failure
            if failure is not None and (self._claim is claim or claim.cancelled):
                self.record_error(f"Prepare refused: {failure}")
            raise

    def _prepare_ended(self, claim: Claim, task: asyncio.Task[str]) -> None:
        """A Prepare's task has ended (also one cancelled before it began, whose code never
        ran): a failed one that still holds its claim returns the run state to IDLE."""
        if self._preparing is claim:
            self._preparing = None
        if self._claim is claim:
            self._claim = None
            self.transition("prepare_failed")
        claim.ended.set()

    async def _after_prepare(self, run: Run) -> None:
        """Subscribe to the new pipeline's events, then erase the receivers' older
        pipelines. Subscriptions and erasures never overlap (:func:`exclusive`)."""
        await asyncio.shield(self.observer.watch_processing(run))

        def current() -> bool:
            return self.run is run and self.run_state != RunState.PREPARING

        await self.preparation().erase_old_pipelines(run.uuid, current, self.completions.pending)

    def release(self) -> None:
        """The device server's Init or shutdown: no more clean-up, every event
        subscription ended (a call under way keeps the structure lock until it ends). A
        Prepare under way is cancelled, not waited for: its rollback ends on its own."""
        if self._erase_task is not None:
            self._erase_task.cancel()
        self.trigger_follower.cancel()
        self.completions.close()
        if self._preparing is not None:
            self._preparing.cancel()
        for d in self.devices:
            d.unwatch()
        self.replace_run(None)

    async def rollback(self, devices: Sequence[DevicePort]) -> None:
        self.record_all(await self.preparation().rollback(devices))

    # -- Start, Trigger, Stop, Close, Reset -----------------------------------------------
    async def start(self) -> None:
        """Start receivers then control; on a partial failure stop the others (run FAULT).
        A Stop meanwhile waits for this Start to end (the control is then not started)."""
        self.transition("Start")
        run = self.run
        assert run is not None
        claim = self._claim = Claim("Start")
        try:
            await self._start(claim, run)
        except BaseException:
            if self._claim is claim and self.run is run and self.run_state in (RunState.STARTING, RunState.STOPPING):
                self.transition("failed")
            raise
        finally:
            if self._claim is claim:
                self._claim = None
            claim.ended.set()

    async def _start(self, claim: Claim, run: Run) -> None:
        t0 = self.clock()
        started: list[DevicePort] = list(self.receivers)
        errors = await self._fan_out("Start", [(r, r.start) for r in self.receivers])
        if not errors and not run.stop_requested:
            started.append(self.control)
            errors = await self._fan_out("Start", [(self.control, self.control.start)])
        if errors:
            self.record_all(errors)
            self.record_all(await self._fan_out("Stop", [(d, d.stop) for d in self.devices]))
            raise MultiDeviceError("Start", errors)
        run.started_at = time.time()
        run.last_change = self.clock()
        run.rate.reset()
        self.observer.assume(started, DeviceState.RUNNING)
        run.timings["start_s"] = self.timings["start_s"] = self.clock() - t0
        run.timings["started"] = self.clock()
        if self._claim is claim and self.run is run and self.run_state == RunState.STARTING:
            self.transition("started")

    async def trigger(self) -> None:
        self.check("Trigger")
        await call(self.control, "Trigger", self.control.trigger(), self.timeout_s)
        self.triggered()

    async def stop(self) -> None:
        """Stop the run (or cancel a Prepare); when nothing runs, stop any device still running."""
        if self.run_state == RunState.PREPARING:
            self.check("Stop")
            await self._cancel_prepare()  # it returns to IDLE through prepare_failed once rolled back
            return
        if not self.transition("Stop"):  # allowed, nothing to stop in the run
            running = [d for d in self.devices if self.device_states[d.name] == DeviceState.RUNNING]
            if running:
                self.record_all(await self._fan_out("Stop", [(d, d.stop) for d in running]))
            return
        if self.run is not None:
            self.run.stop_requested = True
        self._stops += 1
        try:
            if self._claim is not None:  # a Start under way: stop what it started, once it has
                await self._claim.ended.wait()
            self.record_all(await self._fan_out("Stop", [(d, d.stop) for d in self.devices]))
        finally:
            self._stops -= 1

    async def _cancel_prepare(self) -> None:
        """Cancel the Prepare under way and wait until it has really ended (its rollback
        included: each of its calls has a deadline)."""
        claim = self._preparing
        if claim is not None:
            claim.cancel()
            await claim.ended.wait()

    async def close(self) -> None:
        """Release the prepared acquisition: the control closes, the receivers reset."""
        if not self.transition("Close"):
            return
        claim = self._claim = Claim("Close")
        try:
            calls: list[tuple[DevicePort, Callable[[], Awaitable[Any]]]] = [(self.control, self.control.close)]
            calls += [(r, r.reset) for r in self.receivers]
            errors = await self._fan_out("Close", calls)
            self._assume_done(errors, DeviceState.IDLE)
        finally:
            if self._claim is claim:
                self._claim = None
                self.transition("closed")
            claim.ended.set()
        if errors:
            self.record_all(errors)
            raise MultiDeviceError("Close", errors)

    async def reset(self) -> None:
        """Reset every device and forget the run; errors of offline devices are reported."""
        self.transition("Reset")
        claim = self._claim = Claim("Reset")  # a Prepare under way loses its claim: its outcome is dropped
        self.replace_run(None)  # work still under way for the old run changes nothing now
        try:
            await self._cancel_prepare()
            errors = await self._fan_out("Reset", [(d, d.reset) for d in self.devices])
            self._assume_done(errors, DeviceState.IDLE)
        finally:
            if self._claim is claim:
                self._claim = None
                self.errors.clear()
                self.transition("reset_done")
            claim.ended.set()
        if errors:
            self.record_all(errors)
            raise MultiDeviceError("Reset", errors)

    # -- pipeline services -----------------------------------------------------------------
    def current_run(self) -> Run:
        if self.run is None:
            raise NotFound("no acquisition prepared")
        return self.run

    async def lookup(self, frame_idx: int, source: str = "frame") -> dict[str, Any]:
        """Where a frame is; ``-1`` is the newest one a processing device has."""
        return await lookup(self.current_run(), frame_idx, source, self.poll_timeout_s)

    async def get_frame(self, frame_idx: int, source: str = "frame") -> tuple[str, bytes]:
        return await get_frame(self.current_run(), frame_idx, source, self.timeout_s, self.poll_timeout_s)
