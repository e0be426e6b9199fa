"""``AcquisitionSystem``: one control and N receivers conducted as one detector.

The system owns only its run state; device states are observed (``poll``) and the
system state is derived from them. Commands are checked against the state machine
and conflicting ones are rejected, never queued: asyncio servers interleave commands
at every ``await``. Every remote call has a deadline.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import state_machine
from .errors import (
    ConductorError,
    DeviceError,
    DeviceOffline,
    DeviceTimeout,
    MultiDeviceError,
    NotFound,
    OperationNotAllowed,
    ParamError,
)
from .master_file import Saving
from .params import build_prepare_params
from .pipeline import RunPipeline
from .ports import ControlPort, DevicePort, ProcessingFinder, ProcessingPort, ReceiverPort
from .progress import RateMeter, aggregate
from .state import DeviceState, RunState, SystemState
from .topology import DynamicDispatch, Topology

logger = logging.getLogger(__name__)
T = TypeVar("T")

PROCESSING_CLASS = "LimaProcessingLegacy"
MAX_DYNAMIC_FRAMES = 100_000_000
"""Dynamic dispatch keeps 12 bytes per frame (receiver, local index): 1.2 GB at most."""
MAX_ERRORS = 50


@dataclass
class Progress:
    """The latest counters of the current run (cached; served to readers)."""

    nb_frames: int = 0
    nb_frames_acquired: int = 0
    nb_frames_xferred: int = 0
    nb_frames_processed: int = 0
    nb_frames_saved: int = 0
    nb_frames_ready: int = 0
    frame_rate: float = 0.0
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    xferred: dict[str, int] = field(default_factory=dict)

    def key(self) -> tuple[int, ...]:
        return (self.nb_frames_acquired, self.nb_frames_xferred, self.nb_frames_processed, self.nb_frames_saved)


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
    ) -> None:
        self.control = control
        self.receivers = list(receivers)
        self.devices: list[DevicePort] = [control, *self.receivers]
        self.topology = topology
        self.find_processing = find_processing
        self.timeout_s = timeout_s
        self.poll_timeout_s = poll_timeout_s
        self.watchdog_s = watchdog_s
        self.checkpoint_s = checkpoint_s
        self._checkpoint: asyncio.Task[Any] | None = None
        self._checkpoint_at = clock()
        self._checkpoint_saved: list[int] = []
        self.clock = clock
        self.run_state = RunState.IDLE
        self.uuid = ""
        self.errors: list[str] = []
        self.device_states: dict[str, DeviceState] = {d.name: DeviceState.OFFLINE for d in self.devices}
        self.progress = Progress()
        self.processing: list[ProcessingPort] = []
        self.proc_finished: list[bool] = []
        self.params: dict[str, Any] = {}
        self.pipeline: RunPipeline | None = None
        self.master_file = ""
        self.history: list[str] = []
        self._prepare_task: asyncio.Task[str] | None = None
        self._stop_requested = False
        self._last_change = clock()
        self._last_key: tuple[int, ...] = ()
        self._rate = RateMeter()
        self.timings: dict[str, float] = {}

    # -- derived state ------------------------------------------------------
    @property
    def system_state(self) -> SystemState:
        return SystemState.from_device_states(list(self.device_states.values()))

    @property
    def running(self) -> bool:
        return self.run_state.active or self.run_state == RunState.STOPPING

    @property
    def failed(self) -> bool:
        return self.run_state == RunState.FAULT

    @property
    def last_error(self) -> str:
        return self.errors[-1] if self.errors else ""

    def offline_devices(self) -> list[str]:
        return [n for n, s in self.device_states.items() if s == DeviceState.OFFLINE]

    def record_error(self, message: str) -> None:
        logger.error(message)
        self.errors.append(message)
        del self.errors[:-MAX_ERRORS]
        self.history.append(f"{time.strftime('%H:%M:%S')} {message}")
        del self.history[:-MAX_ERRORS]

    def _set_run_state(self, state: RunState) -> None:
        if state != self.run_state:
            logger.info("run state %s -> %s", self.run_state.value, state.value)
            self.run_state = state

    # -- remote calls ----------------------------------------------------------
    async def _call(
        self, device: DevicePort | ProcessingPort, action: str, call: Awaitable[T], timeout: float | None = None
    ) -> T:
        """One remote call with a deadline; errors become ``ConductorError`` naming the device."""
        try:
            return await asyncio.wait_for(call, timeout or self.timeout_s)
        except ConductorError as exc:
            exc.device = exc.device or device.name
            raise
        except TimeoutError:
            raise DeviceTimeout(f"{action} took longer than {timeout or self.timeout_s:.1f} s", device.name) from None
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise DeviceError(f"{action}: {exc}", device.name) from exc

    async def _fan_out(
        self,
        action: str,
        calls: Sequence[tuple[DevicePort, Callable[[], Awaitable[Any]]]],
        timeout: float | None = None,
    ) -> list[ConductorError]:
        """Run calls in parallel; return the errors (empty when all succeeded)."""
        results = await asyncio.gather(
            *(self._call(d, action, fn(), timeout) for d, fn in calls), return_exceptions=True
        )
        errors: list[ConductorError] = []
        for (device, _), res in zip(calls, results, strict=True):
            if isinstance(res, asyncio.CancelledError):
                raise res
            if isinstance(res, ConductorError):
                errors.append(res)
            elif isinstance(res, BaseException):
                errors.append(DeviceError(f"{action}: {res!r}", device.name))
        return errors

    # -- commands ------------------------------------------------------------
    def check(self, command: str) -> RunState | str:
        return state_machine.check(self.run_state, command)

    async def prepare(self, user_params: dict[str, Any], overrides: dict[str, Any] | None = None) -> str:
        """Validate, fan out Prepare, roll back on partial failure; return the UUID."""
        self.check("Prepare")
        previous = self.run_state
        self._set_run_state(RunState.PREPARING)  # before any await: a second Prepare is rejected
        task = asyncio.ensure_future(self._prepare(user_params, overrides or {}))
        self._prepare_task = task
        try:
            return await task
        except asyncio.CancelledError:
            if task.cancelled():
                raise OperationNotAllowed("Prepare was cancelled by Stop or Reset") from None
            raise
        except BaseException:
            if self.run_state == RunState.PREPARING:
                self._set_run_state(RunState.IDLE if previous == RunState.PREPARED else previous)
            raise
        finally:
            self._prepare_task = None

    async def _prepare(self, user: dict[str, Any], overrides: dict[str, Any]) -> str:
        t0 = self.clock()
        schemas = await asyncio.gather(
            self._call(self.control, "read acq_params schema", self.control.acq_schema()),
            self._call(self.receivers[0], "read acq_params schema", self.receivers[0].acq_schema()),
            self._call(self.receivers[0], "read proc_params schema", self.receivers[0].proc_schema(PROCESSING_CLASS)),
        )
        ctl, rcv, proc = await asyncio.to_thread(build_prepare_params, user, *schemas, overrides)
        if isinstance(self.topology, DynamicDispatch) and ctl["acq"]["nb_frames"] > MAX_DYNAMIC_FRAMES:
            raise ParamError(
                f"control params $.acq.nb_frames: {ctl['acq']['nb_frames']} is more than the {MAX_DYNAMIC_FRAMES} frames a dynamic-dispatch frame table holds"
            )
        if proc["saving"]["enabled"]:
            await asyncio.to_thread(Saving.from_params(proc["saving"]).check_target)
        await self._require_online()
        det_info = await self._call(self.control, "read det_info", self.control.det_info())
        self.uuid = ""
        uid = str(uuidlib.uuid1())
        proc_of = []
        for rank in range(len(self.receivers)):
            p = copy.deepcopy(proc)
            p["saving"]["filename_rank"] = rank
            if isinstance(self.topology, DynamicDispatch):
                p["frame_idx_enabled"] = True
                p["saving"]["include_frame_idx"] = True
            proc_of.append(p)
        calls: list[tuple[DevicePort, Callable[[], Awaitable[Any]]]] = [
            (self.control, lambda: self.control.prepare(uid, ctl))
        ]
        calls += [(r, (lambda r=r, p=p: r.prepare(uid, rcv, p))) for r, p in zip(self.receivers, proc_of, strict=True)]
        prepared: list[DevicePort] = []

        async def tracked(device: DevicePort, fn: Callable[[], Awaitable[Any]]) -> None:
            await fn()
            prepared.append(device)

        try:
            errors = await self._fan_out("Prepare", [(d, (lambda d=d, fn=fn: tracked(d, fn))) for d, fn in calls])
            if errors:
                raise MultiDeviceError("Prepare", errors)
            self.processing = await self._call(
                self.receivers[0],
                "find processing devices",
                self.find_processing(uid, len(self.receivers)),
                timeout=max(5.0, self.timeout_s),
            )
            frame_info = await self._call(self.processing[0], "read frame info", self.processing[0].frame_info())
        except BaseException:
            await asyncio.shield(self._rollback(prepared))
            raise
        self.uuid = uid
        self.params = {"control": ctl, "receiver": rcv, "processing": proc}
        self.proc_finished = [False] * len(self.processing)
        self.progress = Progress(nb_frames=int(ctl["acq"]["nb_frames"]))
        self.pipeline = RunPipeline(
            uid,
            self.topology,
            self.processing,
            [r.name for r in self.receivers],
            proc,
            int(ctl["acq"]["nb_frames"]),
            frame_info,
            {"params": {"acquisition": ctl, "processing": proc}, "detector_information": det_info},
        )
        self.master_file = ""
        self.errors.clear()
        self._stop_requested = False
        self._set_run_state(RunState.PREPARED)
        self.timings["prepare_s"] = self.clock() - t0
        asyncio.ensure_future(self._erase_old_pipelines(uid))
        return uid

    async def _rollback(self, devices: Sequence[DevicePort]) -> None:
        if devices:
            errors = await self._fan_out("Reset (rollback)", [(d, d.reset) for d in devices])
            for e in errors:
                self.record_error(f"rollback: {e}")

    async def _require_online(self) -> None:
        errors = await self._fan_out("ping", [(d, d.ping) for d in self.devices], timeout=min(self.timeout_s, 1.0))
        if errors:
            offline = [e for e in errors if isinstance(e, DeviceOffline | DeviceTimeout)]
            if offline:
                names = ", ".join(e.device or "?" for e in offline)
                raise DeviceOffline(f"device(s) offline: {names}")
            raise MultiDeviceError("ping", errors)

    async def _erase_old_pipelines(self, keep: str) -> None:
        for r in self.receivers:
            try:
                for uid in await self._call(r, "read pipelines", r.pipelines()):
                    if uid != keep:
                        await self._call(r, "erasePipeline", r.erase_pipeline(uid))
            except ConductorError as exc:
                logger.warning("cannot erase old pipelines: %s", exc)

    async def start(self) -> None:
        """Start receivers then control; on a partial failure stop the others (run FAULT)."""
        self.check("Start")
        self._set_run_state(RunState.STARTING)
        t0 = self.clock()
        self._rate.reset()
        errors = await self._fan_out("Start", [(r, r.start) for r in self.receivers])
        if not errors:
            errors = await self._fan_out("Start", [(self.control, self.control.start)])
        if errors:
            for e in errors:
                self.record_error(str(e))
            await self._fan_out("Stop", [(d, d.stop) for d in self.devices])
            self._set_run_state(RunState.FAULT)
            raise MultiDeviceError("Start", errors)
        self._last_change = self.clock()
        self.timings["start_s"] = self.clock() - t0
        self.timings["started_at"] = self.clock()
        if self.run_state == RunState.STARTING:
            self._set_run_state(RunState.RUNNING)

    async def trigger(self) -> None:
        self.check("Trigger")
        await self._call(self.control, "Trigger", self.control.trigger())

    async def stop(self) -> None:
        """Stop the run (or cancel a Prepare); a no-op when nothing runs."""
        nxt = self.check("Stop")
        if nxt == state_machine.NOOP:
            if self.system_state == SystemState.RUNNING:  # devices run without a run of ours
                for e in await self._fan_out("Stop", [(d, d.stop) for d in self.devices]):
                    self.record_error(str(e))
            return
        if self.run_state == RunState.PREPARING:
            self._cancel_prepare()
            return
        self._stop_requested = True
        self._set_run_state(RunState.STOPPING)
        errors = await self._fan_out("Stop", [(d, d.stop) for d in self.devices])
        for e in errors:
            self.record_error(str(e))

    def _cancel_prepare(self) -> None:
        if self._prepare_task is not None and not self._prepare_task.done():
            self._prepare_task.cancel()
        self._set_run_state(RunState.IDLE)

    async def close(self) -> None:
        nxt = self.check("Close")
        if nxt == state_machine.NOOP:
            return
        await self._call(self.control, "Close", self.control.close())
        self._set_run_state(RunState.IDLE)

    async def reset(self) -> None:
        """Reset every device and forget the run; errors of offline devices are reported."""
        self.check("Reset")
        if self.run_state == RunState.PREPARING:
            self._cancel_prepare()
        self._set_run_state(RunState.RESETTING)
        try:
            errors = await self._fan_out("Reset", [(d, d.reset) for d in self.devices])
        finally:
            self.errors.clear()
            self.processing = []
            self.pipeline = None
            self.uuid = ""
            self._set_run_state(RunState.IDLE)
        if errors:
            for e in errors:
                self.record_error(str(e))
            raise MultiDeviceError("Reset", errors)

    # -- observation -----------------------------------------------------------
    async def poll_states(self) -> dict[str, DeviceState]:
        """Read every device's ``acq_state`` (OFFLINE if it does not answer in time)."""

        async def one(d: DevicePort) -> DeviceState:
            try:
                return await asyncio.wait_for(d.acq_state(), self.poll_timeout_s)
            except (ConductorError, TimeoutError, OSError, RuntimeError):
                return DeviceState.OFFLINE

        states = await asyncio.gather(*(one(d) for d in self.devices))
        for d, s in zip(self.devices, states, strict=True):
            if self.device_states[d.name] == DeviceState.OFFLINE and s != DeviceState.OFFLINE:
                d.forget_cache()  # a restarted device may have a new schema
            self.device_states[d.name] = s
        return self.device_states

    async def poll_progress(self, final: bool = False) -> Progress:
        """Read the counters of the current run (control, receivers, processing)."""
        if not self.uuid:
            return self.progress

        async def value(dev: Any, coro: Awaitable[T], default: T) -> T:
            try:
                return await asyncio.wait_for(coro, self.poll_timeout_s)
            except (ConductorError, TimeoutError, OSError, RuntimeError):
                return default

        p = self.progress
        if self.pipeline is not None and (self.running or final):
            try:
                await self.pipeline.fetch(
                    lambda d, action, coro: self._call(d, action, coro, timeout=self.poll_timeout_s)
                )
            except ConductorError as exc:
                logger.warning("reduced data fetch: %s", exc)
        acquired, *xferred = await asyncio.gather(
            value(self.control, self.control.nb_frames_acquired(), p.nb_frames_acquired),
            *(value(r, r.nb_frames_xferred(), p.xferred.get(r.name, 0)) for r in self.receivers),
        )
        previous = [{k: v["per_receiver"].get(r.name, 0) for k, v in p.counters.items()} for r in self.receivers]
        counters = await asyncio.gather(
            *(value(d, d.progress_counters(), prev) for d, prev in zip(self.processing, previous, strict=False))
        )
        finished = await asyncio.gather(
            *(value(d, d.is_finished(), f) for d, f in zip(self.processing, self.proc_finished, strict=True))
        )
        self.proc_finished = list(finished)
        p.nb_frames_acquired = int(acquired)
        p.xferred = {r.name: int(x) for r, x in zip(self.receivers, xferred, strict=True)}
        p.nb_frames_xferred = sum(p.xferred.values())
        p.counters = aggregate([(r.name, c) for r, c in zip(self.receivers, counters, strict=False)])
        p.counters.update(aggregate([(r, {"nb_frames_xferred": v}) for r, v in p.xferred.items()]))
        p.nb_frames_processed = p.counters.get("nb_frames_processed", {}).get("sum", 0)
        p.nb_frames_saved = p.counters.get("nb_frames_saved", {}).get("sum", 0)
        per_rcv = [c.get("nb_frames_processed", 0) for c in counters]
        if self.pipeline is not None and self.pipeline.table is not None:
            p.nb_frames_ready = self.pipeline.table.known_prefix()
            if p.nb_frames:
                p.nb_frames_ready = min(p.nb_frames_ready, p.nb_frames)
        else:
            p.nb_frames_ready = self.topology.frames_ready(per_rcv) if per_rcv else 0
        now = self.clock()
        p.frame_rate = self._rate.add(now, p.nb_frames_xferred) if self.running else 0.0
        if p.key() != self._last_key:
            self._last_key = p.key()
            self._last_change = now
        return p

    async def poll(self) -> None:
        """One observation tick: states, counters, then run tracking."""
        await self.poll_states()
        await self.poll_progress()
        await self.track_run()
        self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        """While running, rewrite the master file every ``checkpoint_s`` (in a thread):
        if the conductor dies mid-run, the frames saved so far stay reachable."""
        pipe = self.pipeline
        if (
            pipe is None
            or pipe.saving is None
            or not self.running
            or self.clock() - self._checkpoint_at < self.checkpoint_s
        ):
            return
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        saved = self.per_receiver("nb_frames_saved")
        if saved == self._checkpoint_saved or not any(saved):
            return
        self._checkpoint_at = self.clock()
        self._checkpoint_saved = saved
        self._checkpoint = asyncio.ensure_future(asyncio.to_thread(pipe.write_master, saved))
        self._checkpoint.add_done_callback(
            lambda t: t.cancelled() or t.exception() and logger.warning("master file checkpoint: %s", t.exception())
        )

    async def track_run(self) -> None:
        """Advance the run from what was observed: end, failure, watchdog."""
        if self.run_state not in (RunState.RUNNING, RunState.WAITING_FOR_PROC, RunState.STOPPING):
            return
        bad = {
            n: s
            for n, s in self.device_states.items()
            if s in (DeviceState.OFFLINE, DeviceState.FAULT, DeviceState.TERMINATE)
        }
        if bad:
            await self._fail_run(bad)
            return
        acq_done = all(s in (DeviceState.IDLE, DeviceState.STOPPED) for s in self.device_states.values())
        proc_done = all(self.proc_finished) if self.processing else acq_done
        if acq_done and proc_done:
            if self.processing:
                await self.poll_progress(final=True)  # final values and reduced data
            if await self._finish_pipeline():
                self._set_run_state(RunState.STOPPED if self._stop_requested else RunState.DONE)
            self.timings["run_s"] = self.clock() - self.timings.get("started_at", self.clock())
            return
        if acq_done and self.run_state == RunState.RUNNING:
            self._set_run_state(RunState.WAITING_FOR_PROC)
        if (
            self.run_state in (RunState.WAITING_FOR_PROC, RunState.STOPPING)
            and self.clock() - self._last_change > self.watchdog_s
        ):
            self.record_error(
                f"watchdog: no progress for {self.watchdog_s:.0f} s while {self.run_state.value}; processing never reported finished"
            )
            self._set_run_state(RunState.FAULT)

    async def _fail_run(self, bad: dict[str, DeviceState]) -> None:
        for name, state in bad.items():
            detail = ""
            rcv = next((r for r in self.receivers if r.name == name), None)
            if state == DeviceState.FAULT and rcv is not None:
                try:
                    detail = await self._call(rcv, "read last_error", rcv.last_error(), timeout=self.poll_timeout_s)
                except ConductorError:
                    detail = ""
            what = "is offline" if state == DeviceState.OFFLINE else f"went {state.name}"
            self.record_error(f"{name} {what}" + (f": {_what(detail)}" if detail else ""))
        self._set_run_state(RunState.FAULT)
        others = [d for d in self.devices if d.name not in bad]
        for e in await self._fan_out("Stop", [(d, d.stop) for d in others]):
            self.record_error(str(e))
        await self.poll_progress(final=True)
        await self._finish_pipeline()

    def per_receiver(self, counter: str) -> list[int]:
        values = self.progress.counters.get(counter, {}).get("per_receiver", {})
        return [int(values.get(r.name, 0)) for r in self.receivers]

    async def _finish_pipeline(self) -> bool:
        """Write the master file of the frames saved; False (run FAULT) if it fails."""
        if self.pipeline is None or self.pipeline.saving is None:
            return True
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
            self._checkpoint = None
        try:
            total, path = await asyncio.to_thread(self.pipeline.write_master, self.per_receiver("nb_frames_saved"))
            self.master_file = path
            self.timings["master_file_frames"] = total
            return True
        except ConductorError as exc:
            self.record_error(f"master file: {exc}")
            self._set_run_state(RunState.FAULT)
            return False

    # -- pipeline services ---------------------------------------------------------------
    def current_pipeline(self) -> RunPipeline:
        if self.pipeline is None:
            raise NotFound("no acquisition prepared")
        return self.pipeline

    async def lookup(self, frame_idx: int, source: str = "frame") -> dict[str, Any]:
        pipe = self.current_pipeline()
        if frame_idx == -1:
            frame_idx = await self._latest_frame()
        return pipe.lookup(
            frame_idx, self.per_receiver("nb_frames_processed"), self.per_receiver("nb_frames_saved"), source
        )

    async def _latest_frame(self) -> int:
        pipe = self.current_pipeline()
        lasts = await asyncio.gather(*(self._call(d, "read last_frames", d.last_frames()) for d in pipe.devices))
        newest = max(int(x.get("processed_idx", -1)) for x in lasts)
        if newest < 0:
            raise NotFound("no frame processed yet")
        return newest

    async def get_frame(self, frame_idx: int, source: str = "frame") -> tuple[str, bytes]:
        where = await self.lookup(frame_idx, source)
        device = self.current_pipeline().devices[where["rank"]]
        try:
            return await self._call(device, where["command"], device.get_frame(where["command"], where["frame_idx"]))
        except (DeviceError, DeviceOffline, DeviceTimeout) as exc:
            if where["hdf5"] is None:
                raise NotFound(
                    f"frame {where['frame_idx']} is no longer in the buffer of {where['receiver']} and was not saved ({exc.message})"
                ) from None
            return await asyncio.to_thread(read_saved_frame, where)

    # -- views -------------------------------------------------------------------
    def locate(self, frame_idx: int) -> tuple[int, int]:
        return self.topology.locate(frame_idx)


def read_saved_frame(where: dict[str, Any]) -> tuple[str, bytes]:
    """A frame from its HDF5 file, in the Lima2 DATA_ARRAY encoding (blocking)."""
    import h5py

    from .devencoded import encode_frame

    h5 = where["hdf5"]
    with h5py.File(h5["file"], "r") as f:
        frame = f[h5["dataset"]][h5["index"]]
    return encode_frame(frame, where["frame_idx"])


def _what(payload: str) -> str:
    """The ``what`` of a Lima2 JSON error payload, or the text itself."""
    try:
        value = json.loads(payload)
        return str(value.get("what", payload)) if isinstance(value, dict) else payload
    except ValueError:
        return payload
