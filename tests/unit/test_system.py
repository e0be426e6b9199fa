"""``AcquisitionSystem`` against in-memory fakes: commands, run tracking, faults."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lima2_conductor.core.devencoded import decode_frame
from lima2_conductor.core.errors import (
    DeviceError,
    DeviceOffline,
    MultiDeviceError,
    NotFound,
    OperationNotAllowed,
    ParamError,
)
from lima2_conductor.core.lima2 import DeviceState as D
from lima2_conductor.core.state import RunState
from lima2_conductor.core.topology import MAX_DYNAMIC_FRAMES, DynamicDispatch
from tests.fakes import FakeProcessing, FakeSystem, until


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_prepare_rolls_back_the_devices_that_prepared() -> None:
    async def scenario() -> None:
        f = FakeSystem()
        f.rcvs[1].fail["prepare"] = DeviceError("no way", "rcv1")
        with pytest.raises(MultiDeviceError) as info:
            await f.system.prepare({})
        assert info.value.reason == "DEVICE_ERROR" and "rcv1" in str(info.value)
        assert f.ctl.calls[-1] == "reset" and f.rcvs[0].calls[-1] == "reset" and "reset" not in f.rcvs[1].calls
        assert f.system.run_state == RunState.IDLE
        assert "rcv1" in f.system.last_error  # a refused Prepare leaves a trace

    run(scenario())


def test_offline_device_is_rechecked_once_then_fails_prepare_before_any_write() -> None:
    async def scenario() -> None:
        f = FakeSystem()
        f.rcvs[0].offline = True
        with pytest.raises(DeviceOffline, match="rcv0"):
            await f.system.prepare({})
        assert "reconnect" in f.rcvs[0].calls and f.rcvs[0].calls.count("ping") == 2
        assert "prepare" not in f.ctl.calls and "prepare" not in f.rcvs[1].calls

    run(scenario())


def test_a_new_prepare_keeps_its_pipeline_whatever_the_previous_cleanup_does() -> None:
    """The cleanup after a Prepare erases the receivers' older pipelines; when it is still
    under way at the next Prepare, it must not erase the pipeline that one makes."""

    async def scenario() -> None:
        f = FakeSystem()
        for r in f.rcvs:
            r.delay["pipelines"] = 0.05
        first = await f.system.prepare({})
        second = await f.system.prepare({})
        deadline = asyncio.get_running_loop().time() + 5
        while any(r.held != [second] for r in f.rcvs) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # the cleanup of the second Prepare erases the first pipeline
        for r in f.rcvs:
            assert r.held == [second], (first, r.held)

    run(scenario())


def test_old_pipelines_are_erased_only_once_the_new_ones_events_are_subscribed() -> None:
    """A Tango server deletes a device without a lock against event subscriptions to its
    other devices: the clean-up after a Prepare subscribes first, then erases."""

    async def scenario() -> None:
        f = FakeSystem()
        await f.system.prepare({})
        log: list[str] = []

        def slow_watch(p: Any) -> Any:
            async def watch(wake: Any) -> None:
                log.append(f"subscribe {p.name}")
                await asyncio.sleep(0.2)
                log.append(f"subscribed {p.name}")

            return watch

        def logged_erase(r: Any) -> Any:
            original = r.erase_pipeline

            async def erase(uuid: str) -> None:
                log.append(f"erase {r.name}")
                await original(uuid)

            return erase

        for r in f.rcvs:
            r.erase_pipeline = logged_erase(r)
        uid = await f.system.prepare({})
        for p in f.system.run.processing:
            p.watch = slow_watch(p)
        await f.system.poll()  # a monitor tick during the clean-up subscribes too
        deadline = asyncio.get_running_loop().time() + 5
        while any(r.held != [uid] for r in f.rcvs) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        erases = [i for i, e in enumerate(log) if e.startswith("erase")]
        subscribed = [i for i, e in enumerate(log) if e.startswith("subscribed")]
        assert len(erases) == len(f.rcvs) and len(subscribed) == len(f.system.run.processing), log
        assert max(subscribed) < min(erases), log

    run(scenario())


def test_a_replaced_run_ends_its_event_subscriptions() -> None:
    """A proxy freed with subscriptions can deadlock Tango's event system: the devices of
    a replaced run unsubscribe before they are dropped, and all devices at release."""

    async def scenario() -> None:
        f = FakeSystem()
        await f.system.prepare({})
        first = list(f.system.run.processing)
        f.procs = [FakeProcessing(f"new-proc{i}", i, 2) for i in range(2)]  # a new run's devices
        await f.system.prepare({})
        deadline = asyncio.get_running_loop().time() + 5
        while not all(p.unwatched for p in first) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert all(p.unwatched for p in first)
        second = list(f.system.run.processing)
        assert not any(p.unwatched for p in second)
        await f.system.reset()  # a forgotten run ends its subscriptions too
        assert all(p.unwatched for p in second)
        f.procs = [FakeProcessing(f"third-proc{i}", i, 2) for i in range(2)]
        await f.system.prepare({})
        third = list(f.system.run.processing)
        f.system.release()
        assert all(p.unwatched for p in third)
        assert all("unwatch" in d.calls for d in (f.ctl, *f.rcvs))

    run(scenario())


def test_a_processing_device_that_does_not_answer_gets_no_more_calls() -> None:
    """Every call to a hung device holds a thread until its timeout: the monitor asks it
    nothing but its progress until it answers again, and its data waits on the device."""

    async def scenario() -> None:
        f = FakeSystem()
        roi = {"topleft": {"x": 0, "y": 0}, "dimensions": {"x": 2, "y": 2}}
        await f.system.prepare({"processing": {"statistics": {"enabled": True, "rect_rois": [roi]}}})
        await f.system.start()
        f.procs[1].hung = True
        for _ in range(3):
            await f.system.poll()
        assert f.procs[1].pops == 0 and f.procs[0].pops > 0
        f.procs[1].hung = False
        await f.system.poll()
        assert f.procs[1].pops > 0

    run(scenario())


def test_second_prepare_is_rejected_and_stop_cancels() -> None:
    async def scenario() -> None:
        f = FakeSystem()
        f.rcvs[0].delay["prepare"] = 5
        first = asyncio.ensure_future(f.system.prepare({}))
        while "prepare" not in f.rcvs[0].calls:  # the first Prepare reached the slow receiver
            await asyncio.sleep(0)
        with pytest.raises(OperationNotAllowed):
            await f.system.prepare({})
        await f.system.stop()
        with pytest.raises(OperationNotAllowed, match="cancelled"):
            await first
        assert f.system.run_state == RunState.IDLE
        assert "reset" in f.ctl.calls  # the control had prepared: rolled back

    run(scenario())


def test_stop_returns_once_the_cancelled_prepare_has_ended_and_rolled_back() -> None:
    """A device keeps preparing after the conductor stops waiting for it (a server ends
    the command it was sent): Stop returns once that Prepare has ended, every device rolled back."""

    async def scenario() -> None:
        f = FakeSystem(timeout_s=2.0)
        s = f.system
        f.rcvs[0].runs_to_end = True
        f.rcvs[0].delay["prepare"] = 0.2
        first = asyncio.ensure_future(s.prepare({}))
        await until(lambda: "prepare" in f.rcvs[0].calls, "the Prepare reached the slow receiver")
        await s.stop()
        assert s.run_state == RunState.IDLE
        with pytest.raises(OperationNotAllowed, match="cancelled"):
            await first
        assert all(d.preparing == 0 for d in f.devices)
        assert all(d.state == D.IDLE for d in f.devices)  # the late one too

    run(scenario())


def test_stop_before_the_prepare_has_begun() -> None:
    """A Prepare cancelled before its work took its first step (its code never ran) has
    ended too: Stop returns and the run is IDLE."""

    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        first = asyncio.ensure_future(s.prepare({}))
        await asyncio.sleep(0)  # the Prepare holds its claim, its work not begun
        assert s.run_state == RunState.PREPARING and not f.ctl.calls
        await s.stop()  # cancels it in this very step
        assert s.run_state == RunState.IDLE
        with pytest.raises(OperationNotAllowed, match="cancelled"):
            await first
        await s.prepare({})
        assert s.run_state == RunState.PREPARED

    run(asyncio.wait_for(scenario(), 10))


def test_a_cancelled_prepare_never_touches_the_next_one() -> None:
    """Prepare A, Stop, Prepare B, Stop, Prepare C: A's end must not clear B's claim (B
    would then escape the second Stop and run beside C), and no Prepare ever overlaps another."""

    async def scenario() -> None:
        f = FakeSystem(timeout_s=2.0)
        s = f.system
        for d in f.devices:
            d.runs_to_end = True
        f.rcvs[0].delay["prepare"] = 0.2
        a = asyncio.ensure_future(s.prepare({}))
        await until(lambda: f.rcvs[0].calls.count("prepare") == 1, "A reached the slow receiver")
        await s.stop()
        b = asyncio.ensure_future(s.prepare({}))
        await until(lambda: f.rcvs[0].calls.count("prepare") == 2, "B reached the slow receiver")
        await s.stop()
        for cancelled in (a, b):
            with pytest.raises(OperationNotAllowed, match="cancelled"):
                await cancelled
        assert s.run_state == RunState.IDLE
        c = await s.prepare({})
        assert s.run_state == RunState.PREPARED and s.uuid == c
        await until(lambda: all(d.preparing == 0 for d in f.devices), "every Prepare ended")
        assert all(d.most_preparing == 1 for d in f.devices)
        assert all(d.state == D.PREPARED for d in f.devices)
        assert all(r.held and r.held[-1] == c for r in f.rcvs)

    run(scenario())


def test_reset_during_a_prepare_waits_for_it_then_resets() -> None:
    async def scenario() -> None:
        f = FakeSystem(timeout_s=2.0)
        s = f.system
        f.rcvs[1].runs_to_end = True
        f.rcvs[1].delay["prepare"] = 0.2
        first = asyncio.ensure_future(s.prepare({}))
        await until(lambda: "prepare" in f.rcvs[1].calls, "the Prepare reached the slow receiver")
        await s.reset()
        assert s.run_state == RunState.IDLE and s.run is None
        with pytest.raises(OperationNotAllowed, match="cancelled"):
            await first
        assert all(d.state == D.IDLE for d in f.devices) and all(d.preparing == 0 for d in f.devices)
        await s.prepare({})
        assert s.run_state == RunState.PREPARED

    run(scenario())


def test_a_failed_prepare_leaves_the_next_ones_state_alone() -> None:
    """Stop during a Prepare whose device then fails: the failure is that Prepare's alone."""

    async def scenario() -> None:
        f = FakeSystem(timeout_s=2.0)
        s = f.system
        f.rcvs[0].runs_to_end = True
        f.rcvs[0].delay["prepare"] = 0.1
        f.rcvs[0].fail["prepare"] = DeviceError("late refusal", "rcv0")
        first = asyncio.ensure_future(s.prepare({}))
        await until(lambda: "prepare" in f.rcvs[0].calls, "the Prepare reached the slow receiver")
        await s.stop()
        del f.rcvs[0].fail["prepare"]
        f.rcvs[0].delay["prepare"] = 0.0
        second = await s.prepare({})
        with pytest.raises(OperationNotAllowed):
            await first
        assert s.run_state == RunState.PREPARED and s.uuid == second

    run(scenario())


def test_release_cancels_a_prepare_without_waiting_for_it() -> None:
    """Init (``release``) returns at once; the Prepare it cancels rolls back on its own."""

    async def scenario() -> None:
        f = FakeSystem(timeout_s=2.0)
        s = f.system
        f.rcvs[0].runs_to_end = True
        f.rcvs[0].delay["prepare"] = 0.2
        first = asyncio.ensure_future(s.prepare({}))
        await until(lambda: "prepare" in f.rcvs[0].calls, "the Prepare reached the slow receiver")
        s.release()
        assert f.rcvs[0].preparing == 1  # not waited for
        with pytest.raises(OperationNotAllowed, match="cancelled"):
            await first
        assert all(d.state == D.IDLE for d in f.devices) and s.run_state == RunState.IDLE

    run(scenario())


def test_stop_during_start_stops_every_device_the_start_reached() -> None:
    """A Stop that reaches the devices before the Start does would leave them running
    while the run says STOPPING: the Stop is sent once the Start has ended."""

    async def scenario() -> None:
        f = FakeSystem(timeout_s=2.0)
        s = f.system
        await s.prepare({"control": {"acq": {"nb_frames": 0}}})
        for r in f.rcvs:
            r.delay["start"] = 0.1
        starting = asyncio.ensure_future(s.start())
        await until(lambda: "start" in f.rcvs[0].calls, "the Start reached the receivers")
        await s.stop()
        await starting
        assert not any(d.state == D.RUNNING for d in f.devices)
        assert "start" not in f.ctl.calls  # stopped before the detector began
        for p in f.procs:
            p.finished = True
        await s.poll()
        assert s.run_state == RunState.STOPPED  # not held until the watchdog

    run(scenario())


def test_run_done_fault_and_watchdog() -> None:
    async def scenario() -> None:
        now = [1000.0]
        f = FakeSystem(clock=lambda: now[0])
        s = f.system
        await s.prepare({})
        await s.start()
        assert s.run_state == RunState.RUNNING
        for d in f.devices:
            d.state = D.IDLE
        await s.poll()
        assert s.run_state == RunState.WAITING_FOR_PROC
        for p in f.procs:
            p.finished = True
        await s.poll()
        assert s.run_state == RunState.DONE
        # receiver FAULT mid-run: failed, others stopped once
        await s.prepare({})
        await s.start()
        f.rcvs[1].state = D.FAULT
        await s.poll()
        assert s.run_state == RunState.FAULT
        assert "rcv1 went FAULT: boom" in s.errors[0]
        assert f.rcvs[0].calls[-1] == "stop" and f.ctl.calls[-1] == "stop"
        await s.reset()
        # processing never finishes: the watchdog ends the run
        for p in f.procs:
            p.finished = False
        await s.prepare({})
        await s.start()
        for d in f.devices:
            d.state = D.IDLE
        await s.poll()
        now[0] += 29.0
        await s.poll()
        assert s.run_state == RunState.WAITING_FOR_PROC  # not yet
        now[0] += 2.0
        await s.poll()
        assert s.run_state == RunState.FAULT and "watchdog" in s.errors[0]

    run(scenario())


def test_start_failure_stops_the_others() -> None:
    async def scenario() -> None:
        f = FakeSystem()
        await f.system.prepare({})
        f.ctl.fail["start"] = DeviceError("detector says no", "ctl")
        with pytest.raises(MultiDeviceError):
            await f.system.start()
        assert f.system.run_state == RunState.FAULT
        assert all(r.calls[-1] == "stop" for r in f.rcvs)

    run(scenario())


def test_dynamic_dispatch_refuses_a_frame_table_beyond_budget() -> None:
    async def scenario() -> None:
        f = FakeSystem(topology=DynamicDispatch(2))
        with pytest.raises(ParamError, match="nb_frames"):
            await f.system.prepare({"control": {"acq": {"nb_frames": MAX_DYNAMIC_FRAMES + 1}}})
        assert "prepare" not in f.ctl.calls and f.system.run_state == RunState.IDLE

    run(scenario())


def test_a_master_file_failure_of_any_kind_ends_the_run_once(tmp_path: Path, monkeypatch: Any) -> None:
    """A ValueError from h5py (not an OSError) must not wedge the run."""

    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        await s.prepare({"processing": {"saving": {"enabled": True, "base_path": str(tmp_path)}}})
        await s.start()
        calls = []

        def broken(*args: Any) -> Any:
            calls.append(args)
            raise ValueError("embedded null character")

        monkeypatch.setattr("lima2_conductor.core.master_dense.write", broken)
        f.end_acquisition(5, saved=True)
        await s.poll()
        assert s.run_state == RunState.FAULT and "master file" in s.last_error
        for _ in range(3):
            await s.poll()
        assert len(calls) == 1  # attempted once, not per tick
        await s.reset()
        assert s.run_state == RunState.IDLE

    run(scenario())


def test_prepare_after_a_stopped_run_resets_the_stopped_devices() -> None:
    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        await s.prepare({"control": {"acq": {"nb_frames": 0}}})
        await s.start()
        await s.stop()
        for p in f.procs:
            p.finished = True
        for d in f.devices:
            d.state = D.STOPPED
        await s.poll()
        assert s.run_state == RunState.STOPPED
        await s.prepare({})
        assert s.run_state == RunState.PREPARED
        assert all("reset" in d.calls for d in f.devices)

    run(scenario())


def test_close_releases_control_and_receivers() -> None:
    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        await s.prepare({})
        started = asyncio.ensure_future(s.close())
        await asyncio.sleep(0)
        with pytest.raises(OperationNotAllowed):  # no Start while the close runs
            await s.start()
        await started
        assert s.run_state == RunState.IDLE
        assert "close" in f.ctl.calls and all("reset" in r.calls for r in f.rcvs)
        assert all(d.state == D.IDLE for d in f.devices)

    run(scenario())


def test_work_of_a_forgotten_run_changes_nothing(tmp_path: Path, monkeypatch: Any) -> None:
    """Reset while the end-of-fault master file is being written: the write's failure
    must not make the system FAULT again."""

    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        await s.prepare({"processing": {"saving": {"enabled": True, "base_path": str(tmp_path)}}})
        await s.start()
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow_failure(*args: Any) -> Any:
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("lima2_conductor.core.master_dense.write", slow_failure)
        for p in f.procs:
            p.processed = p.saved = 3
        f.procs[0].finished = True
        f.rcvs[1].state = D.FAULT
        await s.poll()  # the run fails, the others are stopped
        assert s.run_state == RunState.FAULT
        ending = asyncio.ensure_future(s.poll())  # they drained: the master file is written
        while s.run is None or not s.run.ending:
            await asyncio.sleep(0.001)
        await s.reset()
        release.set()
        await ending
        assert s.run_state == RunState.IDLE and not s.errors
        await s.prepare({})
        assert s.run_state == RunState.PREPARED

    run(scenario())


def test_a_bug_is_not_reported_as_a_device_problem() -> None:
    async def scenario() -> None:
        f = FakeSystem()
        f.rcvs[0].fail["prepare"] = KeyError("a bug of ours")
        with pytest.raises(KeyError):
            await f.system.prepare({})
        assert f.system.run_state == RunState.IDLE

    run(scenario())


def test_newest_frame_and_stale_counters() -> None:
    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        await s.prepare({"control": {"acq": {"nb_frames": 0}}})
        await s.start()
        for p in f.procs:
            p.processed = 2
        await s.poll()
        for p in f.procs:  # the devices moved on since the last tick
            p.processed = 50
        frame, idx = decode_frame(await s.get_frame(-1))
        assert idx == 99 and frame[0, 0, 0] == 99
        assert json.dumps((await s.lookup(-1))["frame_idx"]) == "99"
        where = await s.lookup(77)  # refused by the cached counters, found on the devices
        assert where["receiver"] == "rcv1" and where["local_idx"] == 38
        with pytest.raises(NotFound):
            await s.lookup(500)

    run(scenario())


def test_adopts_a_run_found_running() -> None:
    async def scenario() -> None:
        first = FakeSystem()
        await first.system.prepare({"control": {"acq": {"nb_frames": 20}}})
        await first.system.start()
        uid = first.system.uuid
        # a new conductor (restart, Init) finds the devices running
        second = FakeSystem(devices_of=first)
        await second.system.poll()
        s = second.system
        assert s.run_state == RunState.RUNNING and s.uuid == uid and s.run is not None and s.run.adopted
        assert s.progress.nb_frames == 20
        second.end_acquisition(10)
        await s.poll()
        assert s.run_state == RunState.DONE

    run(scenario())


def test_reduced_data_in_global_order() -> None:
    from lima2_conductor.core.lima2 import STATS_DTYPE

    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        roi = {"topleft": {"x": 0, "y": 0}, "dimensions": {"x": 2, "y": 2}}
        await s.prepare({"processing": {"statistics": {"enabled": True, "rect_rois": [roi]}}})
        await s.start()
        for p in f.procs:
            rows = np.zeros(5, dtype=STATS_DTYPE)
            rows["frame_idx"] = [p.rank + 2 * k for k in range(5)]
            rows["sum"] = rows["frame_idx"] * 10
            p.rows.append(rows)
        await s.poll()
        assert s.run is not None
        got = s.run.pipeline.reduced("roi_stats", 0, 0, 0)
        assert list(got["frame_idx"]) == list(range(10)) and list(got["sum"]) == [10.0 * i for i in range(10)]

    run(scenario())


def test_after_a_failure_the_master_file_waits_for_counts_read_after_the_end(tmp_path: Path) -> None:
    """Every receiver failed: the master file is written from saved counts read after the
    failure, not from a progress read that one processing device did not answer."""

    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        await s.prepare({"processing": {"saving": {"enabled": True, "base_path": str(tmp_path)}}})
        await s.start()
        for p in f.procs:
            p.processed = p.saved = 2
        await s.poll()
        for r in f.rcvs:
            r.state = D.FAULT
        for p in f.procs:
            p.processed = p.saved = 4  # their last frames, counted before they reported FAULT
        f.procs[1].hung = True  # does not answer the reads made after the failure
        await s.poll()  # the run fails
        assert s.run_state == RunState.FAULT
        await s.poll()  # draining: one count was not read
        assert s.run is not None and not s.run.master_file
        f.procs[1].hung = False
        await s.poll()
        assert s.run.master_file and s.run.timings["master_file_frames"] == 8

    run(scenario())
