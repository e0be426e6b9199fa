"""In-memory Lima2 devices implementing the core's ports, for unit and device-tier tests."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from lima2_conductor.core.devencoded import encode_frame, encode_rows
from lima2_conductor.core.errors import DeviceError, DeviceOffline
from lima2_conductor.core.lima2 import CORE_VERSION, STATS_DTYPE, DeviceState
from lima2_conductor.core.ports import ControlPort, ProcessingPort, ReceiverPort
from lima2_conductor.core.system import AcquisitionSystem
from lima2_conductor.core.topology import RoundRobin, Topology
from lima2_conductor.simulator.schemas import acq_params_schema, proc_params_schema

D = DeviceState
SENSOR = (8, 6)


class FakeDevice:
    """A control or receiver: records calls, can fail, hang or be offline."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = D.IDLE
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.delay: dict[str, float] = {}
        self.offline = False
        self.acquired = 0
        self.xferred = 0
        self.held: list[str] = []
        self.params: dict[str, Any] = {}
        self.proc: dict[str, Any] = {}
        self.runs_to_end = False  # a Prepare sent runs to its end though the caller stops waiting (a server)
        self.preparing = 0  # Prepares under way on this device
        self.most_preparing = 0  # the most ever under way at once

    async def _act(self, what: str) -> None:
        self.calls.append(what)
        if self.offline:
            raise DeviceOffline("offline", self.name)
        await asyncio.sleep(self.delay.get(what, 0))
        if what in self.fail:
            raise self.fail[what]

    async def ping(self) -> None:
        await self._act("ping")

    async def acq_state(self) -> DeviceState:
        if self.offline:
            raise DeviceOffline("offline", self.name)
        return self.state

    async def poll(self) -> tuple[DeviceState, int]:
        return await self.acq_state(), self.acquired if self.name == "ctl" else self.xferred

    async def prepare(self, uuid: str, acq: dict[str, Any], proc: dict[str, Any] | None = None) -> None:
        work = self._prepare(uuid, acq, proc)
        await (asyncio.shield(asyncio.ensure_future(work)) if self.runs_to_end else work)

    async def _prepare(self, uuid: str, acq: dict[str, Any], proc: dict[str, Any] | None) -> None:
        self.preparing += 1
        self.most_preparing = max(self.most_preparing, self.preparing)
        try:
            await self._act("prepare")
        finally:
            self.preparing -= 1
        self.params, self.proc = acq, proc or {}
        self.held.append(uuid)
        self.state = D.PREPARED

    async def start(self) -> None:
        await self._act("start")
        self.state = D.RUNNING

    async def stop(self) -> None:
        await self._act("stop")
        if self.state == D.RUNNING:
            self.state = D.STOPPED

    async def reset(self) -> None:
        await self._act("reset")
        self.state = D.IDLE

    async def trigger(self) -> None:
        await self._act("trigger")

    async def close(self) -> None:
        await self._act("close")
        self.state = D.IDLE

    def forget_cache(self) -> None:
        self.calls.append("forget_cache")

    def reconnect(self) -> None:
        self.calls.append("reconnect")

    async def watch(self, wake: Any) -> None:
        self.calls.append("watch")

    def unwatch(self) -> None:
        self.calls.append("unwatch")

    async def acq_params(self) -> dict[str, Any]:
        return self.params

    async def proc_params(self) -> dict[str, Any]:
        return self.proc

    async def acq_schema(self) -> dict[str, Any]:
        return acq_params_schema(*SENSOR)

    async def proc_schema(self, class_name: str) -> dict[str, Any]:
        return proc_params_schema()

    async def proc_version(self, class_name: str) -> str:
        return CORE_VERSION

    async def nb_frames_acquired(self) -> int:
        return self.acquired

    async def det_info(self) -> dict[str, Any]:
        return {"plugin": "Simulator", "model": "fake", "dimensions": {"x": SENSOR[0], "y": SENSOR[1]}}

    async def det_status(self) -> dict[str, Any]:
        return {"temperature": 20.0}

    async def det_capabilities(self) -> dict[str, Any]:
        return {"trigger_modes": ["internal", "software"]}

    async def nb_frames_xferred(self) -> int:
        return self.xferred

    async def last_error(self) -> str:
        return '{"what": "boom", "errinfo": {}}'

    async def pipelines(self) -> list[str]:
        await asyncio.sleep(self.delay.get("pipelines", 0))
        return list(self.held)

    async def erase_pipeline(self, uuid: str) -> None:
        self.held.remove(uuid)


class FakeProcessing:
    """A processing device holding frames ``rank, rank + n, ...`` of the round robin."""

    def __init__(self, name: str, rank: int = 0, nb_receivers: int = 1) -> None:
        self.name = name
        self.rank = rank
        self.nb_receivers = nb_receivers
        self.finished = False
        self.processed = 0
        self.saved = 0
        self.error = ""
        self.rows: list[np.ndarray] = []
        self.buffer_size = 1000
        self.hung = False  # answers nothing (a stopped process)
        self.pops = 0
        self.unwatched = False

    def frames(self) -> list[int]:
        return [self.rank + self.nb_receivers * k for k in range(self.processed)]

    async def progress_counters(self) -> dict[str, int]:
        return {
            "nb_frames_source": self.processed,
            "nb_frames_processed": self.processed,
            "nb_frames_saved": self.saved,
        }

    async def is_finished(self) -> bool:
        return self.finished

    async def progress(self) -> tuple[dict[str, int], bool]:
        if self.hung:
            await asyncio.sleep(3600)
        return await self.progress_counters(), self.finished

    async def last_error(self) -> str:
        return self.error

    async def frame_info(self, attr: str) -> dict[str, Any]:
        return {"nb_channels": 1, "dimensions": {"x": SENSOR[0], "y": SENSOR[1]}, "pixel_type": "gray16"}

    async def pop(self, getter: str) -> tuple[str, bytes]:
        self.pops += 1
        if self.hung:
            await asyncio.sleep(3600)
        rows = np.concatenate(self.rows) if self.rows else np.empty(0, dtype=STATS_DTYPE)
        self.rows = []
        return encode_rows(rows)

    async def get_frame(self, command: str, frame_idx: int) -> tuple[str, bytes]:
        frames = self.frames()
        if frame_idx == -1 and frames:
            frame_idx = frames[-1]
        if frame_idx not in frames[-self.buffer_size :]:
            raise DeviceError(f"frame {frame_idx} is not in the buffer", self.name)
        return encode_frame(np.full((1, SENSOR[1], SENSOR[0]), frame_idx, dtype=np.uint16), frame_idx)

    async def watch(self, wake: Any) -> None:
        pass

    def unwatch(self) -> None:
        self.unwatched = True

    async def last_frames(self) -> dict[str, int]:
        frames = self.frames()
        newest = frames[-1] if frames else -1
        return {"processed_idx": newest, "input_idx": newest}


class FakeSystem:
    """A control, receivers and their processing devices, and a system conducting them."""

    def __init__(
        self,
        n: int = 2,
        clock: Any = None,
        topology: Topology | None = None,
        devices_of: FakeSystem | None = None,
        **kw: Any,
    ) -> None:
        """``devices_of``: a new conductor (a restart, an Init) of that system's devices."""
        self.ctl = FakeDevice("ctl") if devices_of is None else devices_of.ctl
        self.rcvs = [FakeDevice(f"rcv{i}") for i in range(n)] if devices_of is None else devices_of.rcvs
        self.procs = [FakeProcessing(f"proc{i}", i, n) for i in range(n)] if devices_of is None else devices_of.procs

        async def find(uid: str, nb: int) -> list[ProcessingPort]:
            return list(self.procs)

        ctl: ControlPort = self.ctl
        rcvs: list[ReceiverPort] = list(self.rcvs)
        options: dict[str, Any] = {"timeout_s": 0.5, "poll_timeout_s": 0.2, "watchdog_s": 30.0, **kw}
        if clock is not None:
            options["clock"] = clock
        self.system = AcquisitionSystem(ctl, rcvs, topology or RoundRobin(tuple(range(n))), find, **options)

    @property
    def devices(self) -> list[FakeDevice]:
        return [self.ctl, *self.rcvs]

    def end_acquisition(self, frames_per_receiver: int, saved: bool = False) -> None:
        for d in self.devices:
            d.state = D.IDLE
        for p in self.procs:
            p.processed = frames_per_receiver
            p.saved = frames_per_receiver if saved else 0
            p.finished = True


async def until(condition: Any, what: str, timeout: float = 5.0) -> None:
    """Wait, in the event loop, until ``condition()`` holds; fail with ``what`` after
    ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.001)


async def poll_until(system: Any, condition: Any, polls: int) -> None:
    """Run the system's ticks until ``condition()`` holds, at most ``polls`` of them (the
    caller asserts what it expects afterwards)."""
    for _ in range(polls):
        await system.poll()
        if condition():
            return
