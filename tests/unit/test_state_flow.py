"""How the system's state flows: what a command, a tick or a cancel leaves in the system's
record (errors, run state) and in the snapshots it hands the device."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from lima2_conductor.core.completion import Completions
from lima2_conductor.core.errors import ConductorError, DeviceError
from lima2_conductor.core.state import RunState
from tests.fakes import FakeSystem, until


def test_a_rollback_interrupted_by_stop_keeps_its_errors() -> None:
    """A failed Prepare rolls back; a Stop that cancels it meanwhile waits for the rollback
    to end, and both the reason the Prepare failed and the devices that refused their
    Reset are still in ``errors`` (not lost behind 'cancelled')."""

    async def scenario() -> None:
        f = FakeSystem(timeout_s=2.0)
        s = f.system
        f.rcvs[1].fail["prepare"] = DeviceError("no way", "rcv1")
        f.ctl.delay["reset"] = 0.05
        f.ctl.fail["reset"] = DeviceError("cannot reset", "ctl")
        prepare = asyncio.ensure_future(s.prepare({}))
        await until(lambda: "reset" in f.ctl.calls, "the rollback reached the control")
        await s.stop()
        with pytest.raises(ConductorError):
            await prepare
        assert s.run_state == RunState.IDLE
        assert any("cannot reset" in e for e in s.errors), s.errors
        assert any("Prepare refused" in e and "no way" in e for e in s.errors), s.errors

    asyncio.run(scenario())


def test_a_frame_count_seen_after_a_trigger_is_not_taken_back_by_an_older_read() -> None:
    """The control's count read right after a Trigger reaches the run at once; a tick whose
    read of the control was made before must not set it back (a client would see the count
    go down, then up again)."""

    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        views: list[int] = []
        s.publish_to(lambda view: views.append(view.progress.nb_frames_acquired))
        await s.prepare({})
        await s.start()
        await s.poll()
        f.ctl.acquired = 4
        gate = asyncio.Event()
        answer = f.procs[0].progress

        async def slow_progress() -> Any:
            await gate.wait()
            return await answer()

        f.procs[0].progress = slow_progress  # type: ignore[method-assign]
        tick = asyncio.ensure_future(s.poll())
        await until(lambda: f.ctl.acquired == s.observer.counts.get("ctl"), "the tick read the control")
        run = s.run
        assert run is not None
        s.acquired(run, 5)  # the trigger follower's newer count
        gate.set()
        await tick
        assert run.progress.nb_frames_acquired == 5
        assert views[-2:] == [5, 5]

    asyncio.run(scenario())


class ReadOnlyRun:
    """What a completion reads of a failed run; any write to it raises."""

    def __init__(self) -> None:
        proc = SimpleNamespace(progress=self._progress)
        for name, value in {
            "uuid": "u1",
            "receivers": ["rcv0", "rcv1"],
            "master_file": "/data/m.h5",
            "processing": [proc, proc],
            "spec": SimpleNamespace(saved_counter="nb_frames_saved"),
        }.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AssertionError(f"a completion wrote run.{name}")

    def saved(self) -> list[int]:
        return [2, 1]

    async def _progress(self) -> tuple[dict[str, int], bool]:
        return {"nb_frames_saved": 5}, True


def test_a_completion_hands_its_master_file_to_the_system() -> None:
    """The master file of a failed run completed later is recorded on the run by the system
    (its parts never write its state): the completion hands over what it wrote."""

    async def scenario() -> None:
        handed: list[tuple[Any, int, str]] = []
        done = Completions(
            lambda run, saved: (10, "/data/m.h5", [7]),
            lambda message: None,
            lambda run, total, path: handed.append((run, total, path)),
            0.2,
            period_s=0.001,
        )
        run = ReadOnlyRun()
        record = done.add(run, [1], [3, 5], 4)  # type: ignore[arg-type]
        await until(lambda: record.state != "waiting", "the completion")
        assert record.state == "completed" and handed == [(run, 10, "/data/m.h5")]

    asyncio.run(scenario())


def test_after_a_trigger_the_system_follows_the_control_until_the_frame_is_acquired() -> None:
    """A step scan waits for each point's frame: after a Trigger, the system reads the
    control's count until the triggered frame is there and publishes it at once, without
    waiting for a tick."""

    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        views: list[int] = []
        s.publish_to(lambda view: views.append(view.progress.nb_frames_acquired))
        await s.prepare({"control": {"acq": {"trigger_mode": "software", "expo_time": 1000}}})
        await s.start()
        run = s.run
        assert run is not None
        await s.trigger()
        assert run.progress.nb_frames_acquired == 0  # not acquired yet: nothing published
        f.ctl.acquired = 1  # the frame arrives, no tick runs
        await until(lambda: run.progress.nb_frames_acquired == 1, "the triggered frame followed")
        assert views[-1] == 1

    asyncio.run(scenario())
