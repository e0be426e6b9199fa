"""The pure core against in-memory fakes: states, state machine, topology, system."""

from __future__ import annotations

import ast
import asyncio
import pathlib
import time
from typing import Any

import numpy as np
import pytest

from lima2_conductor.core import state_machine
from lima2_conductor.core.devencoded import encode_rows
from lima2_conductor.core.errors import DeviceError, DeviceOffline, MultiDeviceError, OperationNotAllowed, ParamError
from lima2_conductor.core.params import build_prepare_params
from lima2_conductor.core.progress import aggregate
from lima2_conductor.core.reduced_data import STATS_DTYPE
from lima2_conductor.core.state import DeviceState as D
from lima2_conductor.core.state import RunState, SystemState, tango_state_name
from lima2_conductor.core.system import AcquisitionSystem
from lima2_conductor.core.topology import RoundRobin, SingleReceiver, make_topology
from lima2_conductor.simulator.schemas import acq_params_schema, proc_params_schema

CORE = pathlib.Path(__file__).resolve().parents[2] / "lima2_conductor" / "core"


def test_core_never_imports_tango() -> None:
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n == "tango" or n.startswith("tango.") for n in names), path


@pytest.mark.parametrize(
    "states, expected",
    [
        ([D.IDLE, D.IDLE], SystemState.IDLE),
        ([D.STOPPED, D.IDLE], SystemState.IDLE),
        ([D.PREPARED, D.PREPARED], SystemState.PREPARED),
        ([D.PREPARED, D.IDLE], SystemState.IDLE),
        ([D.RUNNING, D.IDLE], SystemState.RUNNING),
        ([D.RUNNING, D.STOPPED], SystemState.RUNNING),
        ([D.RUNNING, D.FAULT], SystemState.FAULT),
        ([D.TERMINATE, D.IDLE], SystemState.FAULT),
        ([D.FAULT, D.OFFLINE], SystemState.DISCONNECTED),
        ([D.RUNNING, D.PREPARED], SystemState.UNKNOWN),
        ([], SystemState.UNKNOWN),
    ],
)
def test_system_state_rules(states: list[D], expected: SystemState) -> None:
    assert SystemState.from_device_states(states) == expected


def test_tango_state_mapping() -> None:
    assert tango_state_name(SystemState.IDLE, RunState.IDLE, initialising=True) == "INIT"
    assert tango_state_name(SystemState.PREPARED, RunState.PREPARED) == "STANDBY"
    assert tango_state_name(SystemState.IDLE, RunState.WAITING_FOR_PROC) == "RUNNING"
    assert tango_state_name(SystemState.DISCONNECTED, RunState.FAULT) == "DISABLE"
    assert tango_state_name(SystemState.IDLE, RunState.FAULT) == "FAULT"
    assert tango_state_name(SystemState.UNKNOWN, RunState.IDLE) == "UNKNOWN"


FINISHED = {RunState.IDLE, RunState.PREPARED, RunState.DONE, RunState.STOPPED}
ALLOWED = {
    "Prepare": FINISHED,
    "Start": {RunState.PREPARED},
    "Trigger": {RunState.RUNNING},
    "Stop": set(RunState),  # Stop is never rejected
    "Close": FINISHED | {RunState.FAULT},
    "Reset": FINISHED | {RunState.PREPARING, RunState.FAULT},
}
NEXT = {
    (RunState.PREPARED, "Start"): RunState.STARTING,
    (RunState.DONE, "Prepare"): RunState.PREPARING,
    (RunState.RUNNING, "Stop"): RunState.STOPPING,
    (RunState.PREPARING, "Stop"): RunState.IDLE,
    (RunState.IDLE, "Stop"): state_machine.NOOP,
    (RunState.FAULT, "Reset"): RunState.RESETTING,
}


@pytest.mark.parametrize("state", list(RunState))
@pytest.mark.parametrize("command", state_machine.COMMANDS)
def test_every_cell_of_the_state_machine(state: RunState, command: str) -> None:
    if state in ALLOWED[command]:
        nxt = state_machine.check(state, command)
        assert nxt == NEXT.get((state, command), nxt)
        assert state_machine.allowed(state, command)
    else:
        with pytest.raises(OperationNotAllowed, match=command):
            state_machine.check(state, command)
        assert not state_machine.allowed(state, command)


def test_topologies() -> None:
    rr = RoundRobin((1, 0, 2))
    assert [rr.locate(i) for i in range(4)] == [(1, 0), (0, 0), (2, 0), (1, 1)]
    assert rr.frames_ready([5, 5, 5]) == 15
    assert rr.frames_ready([1, 2, 2]) == 4  # frames 0..3 present, frame 4 (receiver 0, local 1) missing
    assert rr.frames_ready([3, 0, 3]) == 0
    assert SingleReceiver().frames_ready([7]) == 7
    with pytest.raises(ParamError):
        make_topology("round_robin", 2, [0, 0])
    with pytest.raises(ParamError):
        make_topology("single", 2)
    with pytest.raises(ParamError):
        make_topology("ring", 2)


def test_aggregate() -> None:
    out = aggregate([("a", {"n": 3, "m": 1}), ("b", {"n": 5})])
    assert out["n"] == {"sum": 8, "min": 3, "max": 5, "per_receiver": {"a": 3, "b": 5}}
    assert out["m"]["min"] == 0


def test_build_prepare_params_merges_and_validates() -> None:
    acq, proc = acq_params_schema(64, 64), proc_params_schema()
    overrides = {"control": {"acq": {"nb_frames": 7}}, "processing": {"saving": {"enabled": True}}}
    ctl, rcv, prc = build_prepare_params(
        {"processing": {"saving": {"nb_frames_per_file": 3}}}, acq, acq, proc, overrides
    )
    assert ctl["acq"]["nb_frames"] == 7 and rcv == ctl
    assert prc["saving"]["enabled"] is True and prc["saving"]["nb_frames_per_file"] == 3
    with pytest.raises(ParamError, match=r"\$\.acq\.expo_time"):
        build_prepare_params({"control": {"acq": {"expo_time": 0}}}, acq, acq, proc)
    with pytest.raises(ParamError, match="allowed keys"):
        build_prepare_params({"ctl": {}}, acq, acq, proc)


# -- the system against fakes -----------------------------------------------------------
class FakeDevice:
    def __init__(self, name: str) -> None:
        self.name = name
        self.state = D.IDLE
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.delay: dict[str, float] = {}
        self.offline = False

    async def _act(self, what: str) -> None:
        self.calls.append(what)
        if self.offline:
            raise DeviceOffline("offline", self.name)
        await asyncio.sleep(self.delay.get(what, 0))
        if what in self.fail:
            raise self.fail[what]

    async def ping(self) -> None:
        await self._act("ping")

    async def acq_state(self) -> D:
        if self.offline:
            raise DeviceOffline("offline", self.name)
        return self.state

    async def prepare(self, uuid: str, *params: Any) -> None:
        await self._act("prepare")
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

    def forget_cache(self) -> None:
        pass

    async def acq_schema(self) -> dict:
        return acq_params_schema(64, 64)

    async def proc_schema(self, cls: str) -> dict:
        return proc_params_schema()

    async def nb_frames_acquired(self) -> int:
        return 0

    async def det_info(self) -> dict:
        return {"plugin": "Simulator"}

    async def nb_frames_xferred(self) -> int:
        return 0

    async def last_error(self) -> str:
        return '{"what": "boom", "errinfo": {}}'

    async def pipelines(self) -> list[str]:
        return []

    async def erase_pipeline(self, uuid: str) -> None:
        pass


class FakeProcessing:
    def __init__(self, name: str) -> None:
        self.name = name
        self.finished = False

    async def progress_counters(self) -> dict[str, int]:
        return {"nb_frames_processed": 0}

    async def is_finished(self) -> bool:
        return self.finished

    async def last_error(self) -> str:
        return ""

    async def frame_info(self) -> dict:
        return {"nb_channels": 1, "dimensions": {"x": 4, "y": 3}, "pixel_type": "gray16"}

    async def pop(self, getter: str) -> tuple[str, bytes]:
        return encode_rows(np.empty(0, dtype=STATS_DTYPE))

    async def last_frames(self) -> dict:
        return {"processed_idx": -1}


def make(n: int = 2, clock: Any = None) -> tuple[AcquisitionSystem, FakeDevice, list[FakeDevice], list[FakeProcessing]]:
    ctl = FakeDevice("ctl")
    rcvs = [FakeDevice(f"rcv{i}") for i in range(n)]
    procs = [FakeProcessing(f"proc{i}") for i in range(n)]

    async def find(uid: str, nb: int) -> list[FakeProcessing]:
        return procs

    system = AcquisitionSystem(
        ctl,  # type: ignore[arg-type]
        rcvs,  # type: ignore[arg-type]
        RoundRobin(tuple(range(n))),
        find,  # type: ignore[arg-type]
        timeout_s=0.5,
        poll_timeout_s=0.2,
        watchdog_s=30.0,
        clock=clock or time.monotonic,
    )
    return system, ctl, rcvs, procs


def test_prepare_rolls_back_the_devices_that_prepared() -> None:
    async def scenario() -> None:
        system, ctl, rcvs, _ = make()
        rcvs[1].fail["prepare"] = DeviceError("no way", "rcv1")
        with pytest.raises(MultiDeviceError) as info:
            await system.prepare({})
        assert info.value.reason == "DEVICE_ERROR" and "rcv1" in str(info.value)
        assert ctl.calls[-1] == "reset" and rcvs[0].calls[-1] == "reset" and "reset" not in rcvs[1].calls
        assert system.run_state == RunState.IDLE

    asyncio.run(scenario())


def test_offline_device_fails_prepare_before_any_write() -> None:
    async def scenario() -> None:
        system, ctl, rcvs, _ = make()
        rcvs[0].offline = True
        with pytest.raises(DeviceOffline, match="rcv0"):
            await system.prepare({})
        assert "prepare" not in ctl.calls and "prepare" not in rcvs[1].calls

    asyncio.run(scenario())


def test_second_prepare_is_rejected_and_stop_cancels() -> None:
    async def scenario() -> None:
        system, ctl, rcvs, _ = make()
        rcvs[0].delay["prepare"] = 5
        first = asyncio.ensure_future(system.prepare({}))
        while "prepare" not in rcvs[0].calls:  # the first Prepare reached the slow receiver
            await asyncio.sleep(0)
        with pytest.raises(OperationNotAllowed):
            await system.prepare({})
        await system.stop()
        with pytest.raises(OperationNotAllowed, match="cancelled"):
            await first
        assert system.run_state == RunState.IDLE
        assert "reset" in ctl.calls  # the control had prepared: rolled back

    asyncio.run(scenario())


def test_run_done_fault_and_watchdog() -> None:
    async def scenario() -> None:
        now = [1000.0]
        system, ctl, rcvs, procs = make(clock=lambda: now[0])
        await system.prepare({})
        await system.start()
        assert system.run_state == RunState.RUNNING
        for d in (ctl, *rcvs):
            d.state = D.IDLE
        await system.poll()
        assert system.run_state == RunState.WAITING_FOR_PROC
        for p in procs:
            p.finished = True
        await system.poll()
        assert system.run_state == RunState.DONE
        # receiver FAULT mid-run: failed, others stopped once
        await system.prepare({})
        await system.start()
        rcvs[1].state = D.FAULT
        await system.poll()
        assert system.run_state == RunState.FAULT
        assert "rcv1 went FAULT: boom" in system.errors[0]
        assert rcvs[0].calls[-1] == "stop" and ctl.calls[-1] == "stop"
        await system.reset()
        # processing never finishes: the watchdog ends the run
        for p in procs:
            p.finished = False
        await system.prepare({})
        await system.start()
        for d in (ctl, *rcvs):
            d.state = D.IDLE
        await system.poll()
        now[0] += 29.0
        await system.poll()
        assert system.run_state == RunState.WAITING_FOR_PROC  # not yet
        now[0] += 2.0
        await system.poll()
        assert system.run_state == RunState.FAULT and "watchdog" in system.errors[0]

    asyncio.run(scenario())


def test_start_failure_stops_the_others() -> None:
    async def scenario() -> None:
        system, ctl, rcvs, _ = make()
        await system.prepare({})
        ctl.fail["start"] = DeviceError("detector says no", "ctl")
        with pytest.raises(MultiDeviceError):
            await system.start()
        assert system.run_state == RunState.FAULT
        assert all(r.calls[-1] == "stop" for r in rcvs)

    asyncio.run(scenario())


def test_dynamic_dispatch_refuses_a_frame_table_beyond_budget() -> None:
    from lima2_conductor.core.system import MAX_DYNAMIC_FRAMES
    from lima2_conductor.core.topology import DynamicDispatch

    async def scenario() -> None:
        system, ctl, rcvs, _ = make()
        system.topology = DynamicDispatch(2)
        with pytest.raises(ParamError, match="nb_frames"):
            await system.prepare({"control": {"acq": {"nb_frames": MAX_DYNAMIC_FRAMES + 1}}})
        assert "prepare" not in ctl.calls and system.run_state == RunState.IDLE

    asyncio.run(scenario())
