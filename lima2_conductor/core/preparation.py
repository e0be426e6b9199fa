"""Preparing a run: parameter policy, device checks, the Prepare fan-out, and building the
run's pipeline services (also for a run adopted from the devices).

A :class:`Preparation` is handed the ports and what it needs besides, never the system: it
returns the new run (or raises), and keeps what the system is to apply (the errors of its
rollback, the time of its phases).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import lima2
from .errors import ConductorError, DeviceOffline, DeviceTimeout, MultiDeviceError, ParamError
from .exclusive import exclusive
from .fanout import call, fan_out, run_to_end
from .lima2 import DeviceState
from .master_file import Saving
from .nexus_tree import check_user_metadata
from .params import build_prepare_params, check_saving
from .pipeline import RunPipeline
from .ports import ControlPort, DatabaseCheck, DevicePort, Ports, ProcessingFinder, ReceiverPort
from .progress import Progress
from .run import Run
from .topology import Topology

logger = logging.getLogger(__name__)


class StateTracker(Protocol):
    """What the preparation uses of the observer: the devices' states."""

    device_states: dict[str, DeviceState]

    def assume(self, devices: Any, state: DeviceState) -> None: ...

    async def poll_states(self, grace: float | None = None) -> dict[str, DeviceState]: ...


@dataclass
class Preparation:
    """One preparation of a run (or of an adopted run) over ``ports``."""

    ports: Ports
    topology: Topology
    find_processing: ProcessingFinder
    states: StateTracker
    clock: Callable[[], float]
    check_database: DatabaseCheck | None = None
    rollback_errors: list[ConductorError] = field(default_factory=list)  # for the system to record
    failure: ConductorError | None = None  # why the devices' Prepare failed (for the system to record)
    phases_ms: dict[str, float] = field(default_factory=dict)

    async def prepare_run(self, user: dict[str, Any], overrides: dict[str, Any]) -> Run:
        """Validate the params, check the devices, fan out Prepare (rolled back on a partial
        failure) and build the run."""
        t0 = self.clock()
        spec = _pipeline_of(user, overrides)
        overrides = channel_overrides(spec, overrides)
        ports = self.ports
        schemas = await read_schemas(
            ports.control, ports.receivers[0], spec.class_name, ports.timeout_s, self.check_database
        )
        try:
            ctl, rcv, proc = await asyncio.to_thread(build_prepare_params, user, *schemas, overrides)
            user_metadata = await asyncio.to_thread(check_user_metadata, user.get("masterfile_metadata", {}))
        except RecursionError:
            raise ParamError("params are nested too deeply") from None
        nb_frames = int(ctl["acq"]["nb_frames"])
        local_frames = self.topology.max_local_frames(nb_frames)
        await asyncio.to_thread(check_saving, proc, len(self.ports.receivers), local_frames)  # asks the filesystem
        self.topology.check_frames(nb_frames)
        for source in spec.saved_sources(proc):
            await asyncio.to_thread(Saving.from_params(proc[source.saving or ""]).check_target)
        t1 = self.clock()
        _, det_info = await asyncio.gather(  # independent checks: one round trip, not four
            self.require_online(),
            call(self.ports.control, "read det_info", self.ports.control.det_info(), self.ports.timeout_s),
        )
        await self.make_preparable()
        t2 = self.clock()
        uid = str(uuidlib.uuid1())
        locator = self.topology.new_run(nb_frames)
        n = len(self.ports.receivers)
        try:
            per_rank = [spec.finalise(proc, rank, n, locator.needs_frame_idx) for rank in range(n)]
        except lima2.PipelineRefused as exc:
            raise ParamError(f"processing params: {exc}") from None
        prepared: list[DevicePort] = []

        async def control() -> None:
            await self.ports.control.prepare(uid, ctl)
            prepared.append(self.ports.control)

        async def receiver(r: ReceiverPort, proc_params: dict[str, Any]) -> None:
            await r.prepare(uid, rcv, proc_params)
            prepared.append(r)

        calls: list[tuple[DevicePort, Callable[[], Awaitable[None]]]] = [(self.ports.control, control)]
        calls += [(r, functools.partial(receiver, r, p)) for r, p in zip(self.ports.receivers, per_rank, strict=True)]
        # Cancelled (Stop, Reset), the Prepare still waits for every answer (each has its
        # deadline) so that the rollback covers every device that prepared: the next Prepare
        # then never meets one of this one's calls on a device.
        sent = asyncio.ensure_future(fan_out("Prepare", calls, self.ports.timeout_s))
        try:
            errors = await run_to_end(sent)
            if errors:
                raise MultiDeviceError("Prepare", errors)
            self.states.assume(self.ports.devices, DeviceState.PREPARED)
            t3 = self.clock()
            params = {"control": ctl, "receiver": rcv, "processing": proc}
            run = await self.new_run(uid, spec, params, det_info, user_metadata=user_metadata)
        except BaseException as exc:
            if isinstance(exc, ConductorError):  # kept: a Stop during the rollback cancels the raise
                self.failure = exc
            await run_to_end(self._roll_back([*prepared, *self._unanswered(sent)]))
            raise
        self.phases_ms = {
            "params": round(1000 * (t1 - t0), 1),
            "device_checks": round(1000 * (t2 - t1), 1),
            "device_prepare": round(1000 * (t3 - t2), 1),
            "processing_devices": round(1000 * (self.clock() - t3), 1),
        }
        return run

    def _unanswered(self, sent: asyncio.Future[list[ConductorError]]) -> list[DevicePort]:
        """The devices whose Prepare did not answer in time: they may have prepared since."""
        if not sent.done() or sent.cancelled() or sent.exception() is not None:
            return []
        late = {e.device for e in sent.result() if isinstance(e, DeviceTimeout)}
        return [d for d in self.ports.devices if d.name in late]

    async def new_run(
        self,
        uid: str,
        spec: lima2.PipelineSpec,
        params: dict[str, Any],
        det_info: dict[str, Any],
        adopted: bool = False,
        user_metadata: dict[str, Any] | None = None,
    ) -> Run:
        """Find the run's processing devices and build its pipeline services. The master
        file's detector group gets the params, ``det_info`` and the user's metadata (whose
        ``params`` or ``detector_information`` replace the conductor's, as lima2-client's)."""
        processing = list(
            await call(
                self.ports.receivers[0],
                "find processing devices",
                self.find_processing(uid, len(self.ports.receivers)),
                max(5.0, self.ports.timeout_s),
            )
        )
        first = processing[0]
        infos = await asyncio.gather(
            *(
                call(first, f"read {s.info_attr}", first.frame_info(s.info_attr), self.ports.timeout_s)
                for s in spec.frame_sources
            )
        )
        nb_frames = int(params["control"]["acq"]["nb_frames"])
        names = [r.name for r in self.ports.receivers]
        pipeline = RunPipeline(
            uid,
            spec,
            self.topology.new_run(nb_frames),
            processing,
            names,
            params["processing"],
            nb_frames,
            {s.name: lima2.frame_info_of(s.kind, info) for s, info in zip(spec.frame_sources, infos, strict=True)},
            {
                "detector": {
                    "params": {"acquisition": params["control"], "processing": params["processing"]},
                    "detector_information": det_info,
                    **(user_metadata or {}),
                }
            },
            self.topology.name,
        )
        return Run(uid, spec, params, processing, pipeline, names, adopted, progress=Progress(nb_frames=nb_frames))

    async def require_online(self) -> None:
        """The database answers, and every device answers a ping and has its state read; an
        offline device is re-checked once on a new connection (a proxy retries a failed
        device at most once a second)."""
        ping = min(self.ports.timeout_s, 1.0)
        checks: list[Awaitable[Any]] = [fan_out("ping", [(d, d.ping) for d in self.ports.devices], ping)]
        checks.append(self.states.poll_states())
        if self.check_database is not None:
            checks.append(self.check_database())
        errors = (await asyncio.gather(*checks))[0]
        offline = [e for e in errors if isinstance(e, DeviceOffline | DeviceTimeout)]
        if offline:
            again = [d for d in self.ports.devices if d.name in {e.device for e in offline}]
            for d in again:
                d.reconnect()
            errors = await fan_out("ping", [(d, d.ping) for d in again], ping)
            offline = [e for e in errors if isinstance(e, DeviceOffline | DeviceTimeout)]
            if offline:
                raise DeviceOffline(f"device(s) offline: {', '.join(e.device or '?' for e in offline)}")
            await self.states.poll_states()  # the states of the devices back online
        if errors:
            raise MultiDeviceError("ping", errors)

    async def make_preparable(self) -> None:
        """Devices left STOPPED by an interrupted run need a Reset before a new Prepare
        (their states were just read by :meth:`require_online`)."""
        stopped = [d for d in self.ports.devices if self.states.device_states[d.name] == DeviceState.STOPPED]
        if stopped:
            errors = await fan_out("Reset (after a stopped run)", [(d, d.reset) for d in stopped], self.ports.timeout_s)
            if errors:
                raise MultiDeviceError("Reset (after a stopped run)", errors)
            self.states.assume(stopped, DeviceState.IDLE)

    async def erase_old_pipelines(self, keep: str, current: Callable[[], bool], read: Callable[[str], bool]) -> None:
        """Erase the receivers' pipelines other than ``keep`` (the run just prepared); stops
        as soon as ``current()`` says ``keep`` is no longer the run (another Prepare began,
        whose new pipeline must not be erased). ``read(uid)``: a completion still reads it."""
        for r in self.ports.receivers:
            try:
                for uid in await call(r, "read pipelines", r.pipelines(), self.ports.timeout_s):
                    if uid != keep and current() and not read(uid):
                        await exclusive(call(r, "erasePipeline", r.erase_pipeline(uid), self.ports.timeout_s))
            except ConductorError as exc:
                logger.warning("cannot erase old pipelines: %s", exc)

    async def _roll_back(self, devices: Sequence[DevicePort]) -> None:
        """:meth:`rollback`, its errors kept by its own task: a cancel of the Prepare
        meanwhile (a Stop, a Reset) does not lose them."""
        self.rollback_errors += await self.rollback(devices)

    async def rollback(self, devices: Sequence[DevicePort]) -> list[ConductorError]:
        """Reset ``devices`` (those a Prepare reached); the errors of those that refused."""
        if not devices:
            return []
        errors = await fan_out("Reset (rollback)", [(d, d.reset) for d in devices], self.ports.timeout_s)
        failed = {e.device for e in errors}
        self.states.assume([d for d in devices if d.name not in failed], DeviceState.IDLE)
        return errors

    async def adopted_run(self, uid: str) -> Run:
        """The run ``uid`` as the devices hold it: params read back from them."""
        ctl = await call(self.ports.control, "read acq_params", self.ports.control.acq_params(), self.ports.timeout_s)
        rcv0 = self.ports.receivers[0]
        rcv = await call(rcv0, "read acq_params", rcv0.acq_params(), self.ports.timeout_s)
        proc = await call(rcv0, "read proc_params", rcv0.proc_params(), self.ports.timeout_s)
        try:
            spec = lima2.pipeline(str(proc.get("class_name", lima2.DEFAULT_PIPELINE)))
        except KeyError as exc:
            raise ParamError(str(exc.args[0])) from None
        det_info = await call(self.ports.control, "read det_info", self.ports.control.det_info(), self.ports.timeout_s)
        return await self.new_run(uid, spec, {"control": ctl, "receiver": rcv, "processing": proc}, det_info, True)


def _pipeline_of(user: dict[str, Any], overrides: dict[str, Any]) -> lima2.PipelineSpec:
    proc = user.get("processing")
    name = (proc.get("class_name") if isinstance(proc, dict) else None) or overrides.get("processing", {}).get(
        "class_name", lima2.DEFAULT_PIPELINE
    )
    try:
        return lima2.pipeline(str(name))
    except KeyError as exc:
        raise ParamError(f"processing params $.class_name: {exc.args[0]}") from None


def channel_overrides(spec: lima2.PipelineSpec, overrides: dict[str, Any]) -> dict[str, Any]:
    """The conductor's saving settings applied to every saving channel of the class."""
    proc = overrides.get("processing")
    if not isinstance(proc, dict) or "saving" not in proc or "saving" in spec.saving_channels:
        return overrides
    rest = {k: v for k, v in proc.items() if k != "saving"}
    return {**overrides, "processing": {**rest, **spec.saving_overrides(proc["saving"])}}


async def read_schemas(
    control: ControlPort,
    receiver: ReceiverPort,
    class_name: str,
    timeout_s: float,
    check_database: DatabaseCheck | None = None,
) -> tuple[Any, Any, Any]:
    """The control's and the receivers' ``acq_params`` schemas and ``class_name``'s
    ``proc_params`` schema, read at once. They come from the database (unless cached): a
    client call to a database that does not answer can freeze the whole process, so none
    is made when ``check_database`` finds it down, and a failed read asks it again."""
    if check_database is not None:
        await check_database()
    try:
        ctl, rcv, proc = await asyncio.gather(
            call(control, "read acq_params schema", control.acq_schema(), timeout_s),
            call(receiver, "read acq_params schema", receiver.acq_schema(), timeout_s),
            call(receiver, "read proc_params schema", receiver.proc_schema(class_name), timeout_s),
        )
    except (DeviceOffline, DeviceTimeout):
        if check_database is not None:  # is the database the one down?
            await check_database()
        raise
    return ctl, rcv, proc
