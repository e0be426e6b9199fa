"""``AcquisitionSystem``: one control and N receivers conducted as one detector.

The system owns only its run state; device states are observed (:mod:`.observer`) and the
system state is derived from them. Commands are checked against the state machine and
conflicting ones are rejected, never queued: asyncio servers interleave commands at every
``await``. Every remote call has a deadline (:mod:`.fanout`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import preparation, state_machine
from .completion import Completions, write_gapped
from .detector import DetectorCache
from .errors import (
    ConductorError,
    MultiDeviceError,
    NotFound,
    OperationNotAllowed,
)
from .fanout import call, fan_out, run_to_end
from .handles import DatabaseCheck
from .lima2 import DeviceState
from .lookup import get_frame, lookup
from .observer import Observer
from .pipeline import RunPipeline
from .ports import ControlPort, DevicePort, ProcessingFinder, ReceiverPort
from .progress import Progress
from .run import Run
from .state import RunState, SystemState
from .topology import Topology

logger = logging.getLogger(__name__)
MAX_ERRORS = 50


@dataclass(eq=False)
class Claim:
    """One command's hold on the run state while it is under way (PREPARING, STARTING,
    CLOSING, RESETTING). Only the command holding the system's current claim moves the
    run state on, and it compares its claim by identity before any write: a command that
    was cancelled or overtaken changes nothing, whenever it ends."""

    command: str
    task: asyncio.Task[Any] | None = None  # the work, when it can be cancelled (Prepare)
    cancelled: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set once its work has really ended

    def cancel(self) -> None:
        """Cancel the work once (its rollback then runs to its end)."""
        if not self.cancelled and self.task is not None and not self.task.done():
            self.cancelled = True
            self.task.cancel()


class AcquisitionSystem:
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
        self.control = control
        self.receivers = list(receivers)
        self.devices: list[DevicePort] = [control, *self.receivers]
        self.topology = topology
        self.find_processing = find_processing
        self.timeout_s = timeout_s
        self.poll_timeout_s = poll_timeout_s
        self.clock = clock
        self.check_database = check_database
        self.run_state = RunState.IDLE
        self.run: Run | None = None
        self.errors: list[str] = []
        self.history: list[str] = []
        self.detector = DetectorCache()
        self.timings: dict[str, Any] = {}
        self._erase_task: asyncio.Task[Any] | None = None
        self.observer = Observer(self, watchdog_s, checkpoint_s)
        self._claim: Claim | None = None  # the command that holds the run state
        self._preparing: Claim | None = None  # the Prepare under way, until it has really ended
        self._stops = 0  # Stop fan-outs under way
        self._background: set[asyncio.Task[Any]] = set()
        self.completions = Completions(write_gapped, self.note, poll_timeout_s)  # failed runs' master files

    # -- derived views ------------------------------------------------------------
    @property
    def device_states(self) -> dict[str, DeviceState]:
        return self.observer.device_states

    @property
    def system_state(self) -> SystemState:
        return SystemState.from_device_states(list(self.device_states.values()))

    @property
    def running(self) -> bool:
        return self.run_state.active

    @property
    def failed(self) -> bool:
        return self.run_state == RunState.FAULT

    @property
    def uuid(self) -> str:
        return self.run.uuid if self.run else ""

    @property
    def progress(self) -> Progress:
        return self.run.progress if self.run else Progress()

    @property
    def pipeline(self) -> RunPipeline | None:
        return self.run.pipeline if self.run else None

    @property
    def busy(self) -> bool:
        """A command is under way whose outcome the run tracking must not anticipate."""
        return self._claim is not None or self._stops > 0

    @property
    def last_error(self) -> str:
        return self.errors[-1] if self.errors else ""

    def offline_devices(self) -> list[str]:
        return [n for n, s in self.device_states.items() if s == DeviceState.OFFLINE]

    def record_error(self, message: str) -> None:
        logger.error(message)
        self.errors.append(message)
        del self.errors[:-MAX_ERRORS]
        self.note(message)

    def note(self, message: str) -> None:
        """One line of history (``GetInfo``), with the wall-clock time."""
        self.history.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}")
        del self.history[:-MAX_ERRORS]

    def transition(self, trigger: str) -> None:
        """Move the run state through the state machine (a missing transition is a bug)."""
        new = state_machine.next_state(self.run_state, trigger)
        if new != self.run_state:
            logger.info("run state %s -> %s (%s)", self.run_state.value, new.value, trigger)
            self.run_state = new

    def check(self, command: str) -> RunState | str:
        return state_machine.check(self.run_state, command)

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Background work whose task is kept (and whose failure is logged)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)
        return task

    async def _fan_out(
        self, action: str, calls: Sequence[tuple[Any, Callable[[], Awaitable[Any]]]]
    ) -> list[ConductorError]:
        return await fan_out(action, calls, self.timeout_s)

    def _assume_done(self, errors: Sequence[ConductorError], state: DeviceState) -> None:
        """The devices whose command succeeded are now in ``state``."""
        failed = {e.device for e in errors}
        self.observer.assume([d for d in self.devices if d.name not in failed], state)

    def _record_all(self, errors: Sequence[ConductorError]) -> None:
        for e in errors:
            self.record_error(str(e))

    # -- Prepare ---------------------------------------------------------------------
    async def prepare(self, user_params: dict[str, Any], overrides: dict[str, Any] | None = None) -> str:
        """Validate, fan out Prepare, roll back on partial failure; return the UUID.

        The work runs in its own task under a :class:`Claim`: Stop and Reset cancel it and
        wait for its end (rollback included); its outcome is applied by the task itself,
        only while its claim is the current one."""
        self.run_state = state_machine.check(self.run_state, "Prepare")  # type: ignore[assignment]
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
        try:
            if before is not None:  # one Prepare at a time: the previous one has really ended
                await before.ended.wait()
            t0 = self.clock()
            run = await preparation.prepare_run(self, user, overrides)
            if claim.cancelled or self._claim is not claim:  # overtaken: nothing of it may stay
                await run_to_end(self.rollback(self.devices))
                raise asyncio.CancelledError
            self._claim = None
            self._replace_run(run)
            self.errors.clear()
            self.transition("prepared")
            self.timings["prepare_s"] = self.clock() - t0
            self._erase_task = self.spawn(self._after_prepare(run))
            return run.uuid
        except BaseException as exc:
            if self._claim is claim and isinstance(exc, ConductorError):
                self.record_error(f"Prepare refused: {exc}")
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

    def _replace_run(self, run: Run | None) -> None:
        """``run`` becomes the current run; the subscriptions of the one it replaces end."""
        if self.run is not None and self.run is not run:
            for p in self.run.processing:
                p.unwatch()
        self.run = run

    async def _after_prepare(self, run: Run) -> None:
        """Subscribe to the new pipeline's events, then erase the receivers' older
        pipelines. Subscriptions and erasures never overlap (:func:`exclusive`)."""
        await asyncio.shield(self.observer.watch_processing(run))
        await preparation.erase_old_pipelines(self, run.uuid)

    def release(self) -> None:
        """The device server's Init or shutdown: no more clean-up, every event
        subscription ended (a call under way keeps the structure lock until it ends). A
        Prepare under way is cancelled, not waited for: its rollback ends on its own."""
        if self._erase_task is not None:
            self._erase_task.cancel()
        self.completions.close()
        if self._preparing is not None:
            self._preparing.cancel()
        for d in self.devices:
            d.unwatch()
        self._replace_run(None)

    async def rollback(self, devices: Sequence[DevicePort]) -> None:
        if devices:
            errors = await self._fan_out("Reset (rollback)", [(d, d.reset) for d in devices])
            failed = {e.device for e in errors}
            self.observer.assume([d for d in devices if d.name not in failed], DeviceState.IDLE)
            self._record_all(errors)

    # -- Start, Trigger, Stop, Close, Reset -----------------------------------------------
    async def start(self) -> None:
        """Start receivers then control; on a partial failure stop the others (run FAULT).
        A Stop meanwhile waits for this Start to end (the control is then not started)."""
        self.run_state = state_machine.check(self.run_state, "Start")  # type: ignore[assignment]
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
            self._record_all(errors)
            self._record_all(await self._fan_out("Stop", [(d, d.stop) for d in self.devices]))
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

    async def stop(self) -> None:
        """Stop the run (or cancel a Prepare); when nothing runs, stop any device still running."""
        nxt = self.check("Stop")
        if nxt == state_machine.NOOP:
            running = [d for d in self.devices if self.device_states[d.name] == DeviceState.RUNNING]
            if running:
                self._record_all(await self._fan_out("Stop", [(d, d.stop) for d in running]))
            return
        if self.run_state == RunState.PREPARING:
            await self._cancel_prepare()  # it returns to IDLE itself once rolled back
            return
        self.run_state = nxt  # type: ignore[assignment]
        if self.run is not None:
            self.run.stop_requested = True
        self._stops += 1
        try:
            if self._claim is not None:  # a Start under way: stop what it started, once it has
                await self._claim.ended.wait()
            self._record_all(await self._fan_out("Stop", [(d, d.stop) for d in self.devices]))
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
        nxt = self.check("Close")
        if nxt == state_machine.NOOP:
            return
        self.run_state = nxt  # type: ignore[assignment]
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
            self._record_all(errors)
            raise MultiDeviceError("Close", errors)

    async def reset(self) -> None:
        """Reset every device and forget the run; errors of offline devices are reported."""
        self.check("Reset")
        claim = self._claim = Claim("Reset")  # a Prepare under way loses its claim: its outcome is dropped
        self.run_state = RunState.RESETTING
        self._replace_run(None)  # work still under way for the old run changes nothing now
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
            self._record_all(errors)
            raise MultiDeviceError("Reset", errors)

    # -- observation (one tick of the monitor) -------------------------------------------
    async def poll(self, grace: float | None = None) -> None:
        """One tick of observation (``grace``: :meth:`.observer.Observer.tick`)."""
        await self.observer.tick(grace)

    async def adopt(self, uid: str) -> None:
        """Take over run ``uid`` found on the devices (prepared by a conductor that died,
        or before an ``Init``): params from the devices, tracked to its end."""
        run = await preparation.adopted_run(self, uid)
        if self.run is not None or self.run_state != RunState.IDLE or self.busy:
            return  # a command got there first
        self._replace_run(run)
        running = any(s == DeviceState.RUNNING for s in self.device_states.values())
        self.transition("adopted" if running else "adopted_stopped")
        run.stop_requested = not running
        self.note(f"adopted run {uid} found {'running' if running else 'stopped'} on the devices")
        logger.warning("adopted run %s found on the devices", uid)

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


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background work failed: %r", task.exception())
