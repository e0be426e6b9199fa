"""The lima2-client 4.3 conductor (the reference) drives our simulators.

Its ``AcquisitionSystem`` runs in this test process against the simulator servers
(subprocesses) exactly as it runs against the real Lima2 devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import h5py
import jsonschema_default
import numpy as np
import pytest
import tango
import tango.asyncio

from lima2_conductor.cli.launcher import CONTROL, LocalSystem, receiver_name
from lima2_conductor.simulator.frames import FrameGenerator, stamped_index
from lima2_conductor.simulator.reduction import Reducer
from tests.conftest import release_event_subscriptions

lima2 = pytest.importorskip("lima2.conductor.acquisition_system")
from lima2.common.devencoded import data_array  # noqa: E402
from lima2.common.state import DeviceState, State  # noqa: E402
from lima2.conductor.tango.control import TangoControl  # noqa: E402
from lima2.conductor.tango.receiver import TangoReceiver  # noqa: E402
from lima2.conductor.topology import DynamicDispatch, RoundRobin  # noqa: E402

SENSOR = (512, 512)


@pytest.fixture(scope="module")
def run():
    """One event loop for the module: pytango binds its asyncio executor to the first loop."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    release_event_subscriptions()  # the peer never unsubscribes: no callback after the close
    loop.close()


def acq_params(nb_frames: int, expo_us: int) -> dict[str, Any]:
    schema = tango.Database().get_class_attribute_property("LimaSimulatorControl", "acq_params")["acq_params"][
        "schema"
    ][0]
    params = jsonschema_default.create_from(json.loads(schema))
    params["acq"].update(nb_frames=nb_frames, expo_time=expo_us, latency_time=0)
    params["det"]["nb_prefetch_frames"] = 16
    params["det"]["generator"]["gauss"]["grow_factor"] = 0.1
    return params


def make_system(topology: str = "round_robin") -> Any:
    ctl = TangoControl(url=CONTROL, timeout_ms=5000)
    rcvs = [TangoReceiver(url=receiver_name(i), timeout_ms=5000) for i in range(2)]
    topo = (
        RoundRobin(num_receivers=2, ordering=[0, 1]) if topology == "round_robin" else DynamicDispatch(num_receivers=2)
    )
    return lima2.AcquisitionSystem(control=ctl, receivers=rcvs, topology=topo, tango_timeout_s=5)


@contextlib.asynccontextmanager
async def attached(acqsys: Any) -> AsyncIterator[None]:
    """``acqsys.attach()``, then unsubscribe the peer from its processing devices' events.

    The peer never unsubscribes (it counts on the garbage collector). When a scenario
    fails, its traceback keeps the peer's objects alive past the module; once this
    module's event loop is closed and the servers stopped, Tango calls their event
    callbacks with errors, and pytango creates callback coroutines it can no longer
    schedule ("coroutine 'TangoProcessing.on_finished.<locals>.wrapper' was never
    awaited", printed during later modules).
    """
    with acqsys.attach():
        try:
            yield
        finally:
            if acqsys.acquisition is not None:
                for dev in acqsys.acquisition.proc_group:
                    for event_id in (dev.on_finished_event_id, dev.on_error_event_id):
                        if event_id != -1:
                            with contextlib.suppress(tango.DevFailed):
                                await dev.device.unsubscribe_event(event_id)


async def prepare(acqsys: Any, acq: dict[str, Any], proc: dict[str, Any]) -> None:
    """The peer's ``prepare``, then wait until its receiver pollers have seen PREPARED.

    The peer learns that a receiver is done only from a *change* of its polled
    ``acq_state`` (every 50 ms, first value compared with OFFLINE) to IDLE or FAULT. Its
    first poll usually reads IDLE before the Prepare; a short run (12 triggered frames,
    42 frames of 1 ms) can then go PREPARED -> RUNNING -> IDLE between two polls (more so
    on a loaded machine, where the poll period stretches), and IDLE -> IDLE is no change:
    the peer waits for that receiver forever. Once a receiver was seen PREPARED, any end
    of the run is a change; a Bliss scan gives it that time between prepare and start.
    """
    await acqsys.prepare(
        ctl_params=copy.deepcopy(acq), acq_params=copy.deepcopy(acq), proc_params=proc, user_metadata={}
    )
    await until(lambda: all(r.prev_state == DeviceState.PREPARED for r in acqsys.receivers), 10.0, "PREPARED seen")


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout_s} s")
        await asyncio.sleep(0.01)


async def join(acqsys: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while acqsys.acquisition.running():
        if time.monotonic() > deadline:
            raise TimeoutError(f"acquisition still running after {timeout_s} s: {acqsys.acquisition.state.describe()}")
        await asyncio.sleep(0.05)


def test_round_robin_120_frames(system2: LocalSystem, data_dir: Path, run: Any) -> None:
    acq = acq_params(120, 20_000)
    rect = {"topleft": {"x": 100, "y": 100}, "dimensions": {"x": 200, "y": 100}}

    async def scenario() -> dict[str, Any]:
        acqsys = make_system()
        async with attached(acqsys):
            proc = jsonschema_default.create_from(
                json.loads(acqsys.receivers[0].fetch_proc_schema("LimaProcessingLegacy"))
            )
            proc["saving"].update(
                enabled=True, base_path=str(data_dir), file_exists_policy="overwrite", nb_frames_per_file=25
            )
            proc["statistics"].update(enabled=True, rect_rois=[rect])
            await prepare(acqsys, acq, proc)
            assert await acqsys.global_state() == State.PREPARED
            await acqsys.start()
            rows = []
            async for chunk in acqsys.current_pipeline.reduced_data_stream("roi_stats", 0):
                rows.append(chunk.copy())
            await join(acqsys, 30.0)
            pipeline = acqsys.current_pipeline
            frame = await _fetch(pipeline, 57)
            return {
                "xferred": (await acqsys.nb_frames_xferred()).sum,
                "progress": (await pipeline.channel_progress("frame")).sum,
                "rows": np.concatenate(rows),
                "frame": frame,
                "master": pipeline.master_files()["frame"][0],
                "state": await acqsys.global_state(),
                "failed": acqsys.acquisition.failed(),
            }

    out = run(scenario())
    assert out["xferred"] == 120
    assert out["progress"] == 120
    assert not out["failed"]
    assert out["state"] == State.IDLE
    gen = FrameGenerator(acq, *SENSOR)
    # reduced data: 120 rows in global order, equal to the stats computed on frames(i)
    reducer = Reducer.from_params(
        {"statistics": {"enabled": True, "rect_rois": [rect], "arc_rois": []}, "profiles": {"enabled": False}}, *SENSOR
    )
    expected = reducer.statistics(gen.frames(np.arange(120)), np.arange(120), 0)
    assert out["rows"].shape == (120,)
    np.testing.assert_allclose(out["rows"]["avg"], expected["avg"], rtol=1e-6)
    np.testing.assert_allclose(out["rows"]["sum"], expected["sum"], rtol=1e-9)
    # frame fetch through the lookup
    assert stamped_index(out["frame"]) == 57
    np.testing.assert_array_equal(out["frame"], gen.frame(57))
    # the master file it wrote restores the global frame order
    with h5py.File(out["master"]) as f:
        data = f["entry_0000/instrument/detector/data"]
        assert data.shape == (120, *SENSOR)
        for i in (0, 1, 2, 49, 50, 51, 99, 119):
            assert stamped_index(data[i]) == i
            np.testing.assert_array_equal(data[i], gen.frame(i)[0])


async def _fetch(pipeline: Any, idx: int) -> np.ndarray:
    where = pipeline.lookup(frame_idx=idx, source="frame")
    dev = await tango.asyncio.DeviceProxy(where.buffer.device_url)
    raw = await dev.command_inout(where.buffer.command_name, where.buffer.frame_idx)
    return data_array.decode(raw).data


def test_software_trigger(system2: LocalSystem, run: Any) -> None:
    acq = acq_params(12, 1000)
    acq["acq"]["trigger_mode"] = "software"

    async def scenario() -> int:
        acqsys = make_system()
        async with attached(acqsys):
            proc = jsonschema_default.create_from(
                json.loads(acqsys.receivers[0].fetch_proc_schema("LimaProcessingLegacy"))
            )
            await prepare(acqsys, acq, proc)
            await acqsys.start()
            # no frame before the first trigger: RUNNING whatever the time this read takes
            assert await acqsys.global_state() == State.RUNNING
            for _ in range(12):
                await acqsys.trigger()
            await join(acqsys, 30.0)
            assert await acqsys.global_state() == State.IDLE
            return (await acqsys.nb_frames_xferred()).sum

    assert run(scenario()) == 12


def test_dynamic_dispatch_lookup(system2: LocalSystem, run: Any) -> None:
    acq = acq_params(42, 1000)
    acq["det"]["dispatch_mode"] = "predictive_random"

    async def scenario() -> list[int]:
        acqsys = make_system("dynamic")
        async with attached(acqsys):
            proc = jsonschema_default.create_from(
                json.loads(acqsys.receivers[0].fetch_proc_schema("LimaProcessingLegacy"))
            )
            await prepare(acqsys, acq, proc)
            await acqsys.start()
            await join(acqsys, 30.0)
            ranks = []
            for idx in range(42):
                where = acqsys.current_pipeline.lookup(frame_idx=idx, source=None)
                assert where.buffer.frame_idx == idx
                ranks.append(int(where.buffer.device_url.split("@")[-1]))
            return ranks

    expected = [r for i in range(2) for j in range(2) for r in (i, j)]
    assert run(scenario()) == [expected[i % len(expected)] for i in range(42)]


def test_master_files_equal_frame_by_frame(
    system2: LocalSystem, tango_db: LocalSystem, tmp_path: Path, run: Any
) -> None:
    """The same acquisition by the lima2-client conductor and by ours: equal master files."""
    from tests.conftest import DEFAULT

    acq = acq_params(57, 1000)
    peer_dir, our_dir = tmp_path / "peer", tmp_path / "ours"
    peer_dir.mkdir()
    our_dir.mkdir()
    saving = {"enabled": True, "file_exists_policy": "overwrite", "nb_frames_per_file": 10}

    async def peer() -> str:
        acqsys = make_system()
        async with attached(acqsys):
            proc = jsonschema_default.create_from(
                json.loads(acqsys.receivers[0].fetch_proc_schema("LimaProcessingLegacy"))
            )
            proc["saving"].update(saving, base_path=str(peer_dir))
            await prepare(acqsys, acq, proc)
            await acqsys.start()
            await join(acqsys, 30.0)
            tasks = acqsys.current_pipeline.master_file_tasks
            await until(lambda: all(t.done() for t in tasks), 20.0, "master file written")
            return acqsys.current_pipeline.master_files()["frame"][0]

    peer_master = run(peer())
    tango_db.start_conductor(DEFAULT)
    try:
        c = tango.DeviceProxy(DEFAULT.conductor)
        c.Prepare(json.dumps({"control": acq, "processing": {"saving": {**saving, "base_path": str(our_dir)}}}))
        c.Start()
        deadline = time.monotonic() + 20
        while c.run_state not in ("DONE", "FAULT") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.run_state == "DONE", c.Status()
        our_master = json.loads(c.master_files)["frame"][0]
    finally:
        tango_db.processes.pop(DEFAULT.conductor_instance).stop()
    path = "entry_0000/instrument/detector/data"
    with h5py.File(peer_master) as a, h5py.File(our_master) as b:
        assert a[path].shape == b[path].shape == (57, *SENSOR)
        np.testing.assert_array_equal(a[path][()], b[path][()])
        for link in ("entry_0000/measurement/data", "entry_0000/instrument/detector/plot/data"):
            assert b[link].shape == a[link].shape
        assert (
            b["entry_0000/instrument/detector"].attrs["NX_class"]
            == a["entry_0000/instrument/detector"].attrs["NX_class"]
        )


SPARSE_DECODERS = {"SPARSE_FRAME": "sparse_frame", "SMX_SPARSE_FRAME": "smx_sparse_frame"}


async def _fetch_any(pipeline: Any, idx: int, source: str) -> Any:
    """A frame of any source through the peer's lookup and its own decoders."""
    from lima2.common import devencoded

    where = pipeline.lookup(frame_idx=idx, source=source)
    dev = await tango.asyncio.DeviceProxy(where.buffer.device_url)
    fmt, raw = await dev.command_inout(where.buffer.command_name, where.buffer.frame_idx)
    module = getattr(devencoded, SPARSE_DECODERS.get(fmt, "data_array"))
    return module.decode((fmt, raw))


@pytest.mark.parametrize("class_name", ["LimaProcessingSmx", "LimaProcessingXpcs", "LimaProcessingFai"])
def test_each_pipeline_with_its_defaults(system2: LocalSystem, data_dir: Path, run: Any, class_name: str) -> None:
    """Prepare with the class's schema defaults (saving enabled on every channel), run,
    read progress, reduced data, every frame source and the master files."""
    acq = acq_params(30, 1000)

    async def scenario() -> dict[str, Any]:
        acqsys = make_system()
        with acqsys.attach():
            proc = jsonschema_default.create_from(json.loads(acqsys.receivers[0].fetch_proc_schema(class_name)))
            for key, value in proc.items():
                if isinstance(value, dict) and "base_path" in value:
                    value.update(
                        enabled=True,
                        base_path=str(data_dir),
                        filename_prefix=key,
                        file_exists_policy="overwrite",
                        nb_frames_per_file=10,
                    )
            await prepare(acqsys, acq, proc)
            await acqsys.start()
            pipeline = acqsys.current_pipeline
            streams = [n for n in ("nb_peaks", "fill_factor") if n in pipeline.reduced_data_channels()]
            rows = {}
            for name in streams:
                rows[name] = [chunk.copy() async for chunk in pipeline.reduced_data_stream(name, 0)]
            await join(acqsys, 20.0)
            while any(not t.done() for t in pipeline.master_file_tasks):
                await asyncio.sleep(0.05)
            counters = await pipeline.progress_counters()
            frames = {}
            for source in pipeline.FRAME_SOURCES:
                frames[source] = [await _fetch_any(pipeline, i, source) for i in (0, 13, 29)]
            return {
                "failed": acqsys.acquisition.failed(),
                "state": await acqsys.global_state(),
                "indicator": counters[pipeline.PROGRESS_INDICATOR].sum,
                "rows": {k: np.concatenate(v) if v else np.empty(0) for k, v in rows.items()},
                "frames": frames,
                "masters": pipeline.master_files(),
            }

    out = run(scenario())
    assert not out["failed"] and out["state"] == State.IDLE
    assert out["indicator"] == 30
    for name, rows in out["rows"].items():
        assert len(rows) == 30, name
    for source, decoded in out["frames"].items():
        assert len(decoded) == 3, source
    if class_name == "LimaProcessingSmx":
        counts = out["rows"]["nb_peaks"]
        sparse = out["frames"]["sparse_frame"]
        assert [len(s.index) for s in sparse] == [int(counts["nb_peaks"][i]) for i in (0, 13, 29)]
    if class_name == "LimaProcessingXpcs":
        dense = out["frames"]["frame"]
        for sparse, full in zip(out["frames"]["sparse_frame"], dense, strict=True):
            np.testing.assert_array_equal(sparse.densify().data[0], full.data[0])
    for source, (path, dataset) in out["masters"].items():
        if source == "sparse_frame":  # the peer writes it with a single receiver only
            continue
        with h5py.File(path) as f:
            data = f[dataset]
            assert len(data) == 30, source
            np.testing.assert_array_equal(
                np.asarray(data[13]).reshape(-1), np.asarray(out["frames"][source][1].data).reshape(-1)
            )


def _failing_scenario(acq: dict[str, Any], join_timeout: float | None, **changes: Any) -> Any:
    async def scenario() -> tuple[bool, int, Any]:
        acqsys = make_system()
        with acqsys.attach():
            proc = jsonschema_default.create_from(
                json.loads(acqsys.receivers[0].fetch_proc_schema("LimaProcessingFailing"))
            )
            proc.update(changes)
            if join_timeout is not None:  # a run that ends: the peer must have seen PREPARED (see prepare)
                await prepare(acqsys, acq, proc)
            else:  # a run that fails: FAULT is a change whatever the peer saw before
                await acqsys.prepare(
                    ctl_params=copy.deepcopy(acq), acq_params=copy.deepcopy(acq), proc_params=proc, user_metadata={}
                )
            await acqsys.start()
            if join_timeout is not None:
                await join(acqsys, join_timeout)
            else:
                deadline = time.monotonic() + 5
                while not acqsys.acquisition.failed() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            failed = acqsys.acquisition.failed()
            xferred = (await acqsys.nb_frames_xferred()).sum
            await acqsys.reset()
            return failed, xferred, await acqsys.global_state()

    return scenario()


def test_failing_pipeline(system2: LocalSystem, run: Any) -> None:
    """Pure defaults succeed; a failure at a frame fails the run at once; Reset recovers."""
    acq = acq_params(30, 1000)
    assert run(_failing_scenario(acq, 20.0)) == (False, 30, State.IDLE)
    failed, _, state = run(_failing_scenario(acq, None, failed_frame_idx=10))
    assert failed and state == State.IDLE
    failed, _, state = run(_failing_scenario(acq, None, failed_on_activate=True))
    assert failed and state == State.IDLE
    assert run(_failing_scenario(acq, 20.0)) == (False, 30, State.IDLE)


def test_published_schemas_give_complete_defaults(system2: LocalSystem) -> None:
    """What Bliss builds from each class's schema (jsonschema_default) is a complete,
    valid params set, and every class's Version is one Bliss accepts."""
    from lima2_conductor.core import lima2 as names
    from lima2_conductor.core.params import defaults_from_schema

    db = tango.Database()
    for class_name in names.PIPELINES:
        schema = json.loads(db.get_class_attribute_property(class_name, "proc_params")["proc_params"]["schema"][0])
        assert jsonschema_default.create_from(schema) == defaults_from_schema(schema)
        assert db.get_class_property(class_name, "Version")["Version"][0] == names.CORE_VERSION
    assert tango.DeviceProxy(CONTROL).version == names.CORE_VERSION
