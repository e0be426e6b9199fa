"""Reduced-data store, frame locators, master-file layout, lookup, error mapping."""

from __future__ import annotations

import numpy as np
import pytest
import tango

from lima2_conductor.backend.errors import translate
from lima2_conductor.core.errors import (
    DeviceError,
    DeviceOffline,
    DeviceTimeout,
    MultiDeviceError,
    NotFound,
    ParamError,
    SavingError,
)
from lima2_conductor.core.lima2 import LEGACY, STATS_DTYPE, ReducedSource, lima_error
from lima2_conductor.core.master_file import Saving, layout
from lima2_conductor.core.pipeline import RunPipeline
from lima2_conductor.core.reduced_data import ReducedStore
from lima2_conductor.core.topology import FrameTable, RoundRobin, SingleReceiver, make_topology
from tests.fakes import FakeProcessing


def rows(frames: list[int], rois: int = 1) -> np.ndarray:
    out = np.zeros((len(frames), rois), dtype=STATS_DTYPE)
    out["frame_idx"] = np.asarray(frames)[:, None]
    out["sum"] = out["frame_idx"] * 2.0
    return out.reshape(-1)


def test_reduced_store_places_rows_and_grows() -> None:
    store = ReducedStore(ReducedSource("roi_stats", "pop", (1, 1)), size_hint=4)
    store.add(rows([1, 3], 2))
    assert store.ready == 0
    store.add(rows([0, 2], 2))
    assert store.ready == 4
    store.add(rows(list(range(4, 5000)), 2))  # far past the first allocation
    assert store.ready == 5000 and store.capacity >= 5000
    got = store.read(1, 4990, 0)
    assert list(got["frame_idx"]) == list(range(4990, 5000))
    assert list(store.read(0, 10, 3)["sum"]) == [20.0, 22.0, 24.0]


def test_reduced_store_keeps_a_sliding_window_within_its_budget() -> None:
    source = ReducedSource("roi_stats", "pop", (1,))
    store = ReducedStore(source, budget_bytes=100 * STATS_DTYPE.itemsize)
    store.add(rows(list(range(250))))
    assert store.capacity == 100 and store.base == 150 and store.ready == 250
    assert list(store.read(0, 240, 0)["frame_idx"]) == list(range(240, 250))
    with pytest.raises(NotFound, match="dropped"):
        store.read(0, 10, 1)
    with pytest.raises(NotFound):
        store.read(3, 0, 0)
    with pytest.raises(ParamError):
        store.read(0, -1, 0)
    with pytest.raises(ValueError, match="whole frames"):
        ReducedStore(ReducedSource("p", "pop", (3,))).add(rows([0, 1]))


def test_static_locator() -> None:
    loc = RoundRobin((1, 0, 2)).new_run(0)
    assert [loc.locate(i) for i in range(4)] == [(1, 0), (0, 0), (2, 0), (1, 1)]
    assert loc.frames_ready([5, 5, 5]) == 15
    assert loc.frames_ready([1, 2, 2]) == 4  # frame 4 (receiver 0, local 1) missing
    assert loc.frames_ready([3, 0, 3]) == 0
    assert SingleReceiver().new_run(0).frames_ready([7]) == 7
    for bad in (("round_robin", 2, [0, 0]), ("single", 2, None), ("ring", 2, None)):
        with pytest.raises(ParamError):
            make_topology(*bad)


def test_frame_table() -> None:
    table = make_topology("dynamic", 2).new_run(4)
    assert isinstance(table, FrameTable)
    table.learn(0, [0, 3, 4])
    table.learn(1, [1, 2])
    assert table.locate(3) == (0, 1) and table.locate(2) == (1, 1)
    with pytest.raises(KeyError):
        table.locate(5)
    assert table.frames_ready([3, 2]) == 5
    assert table.frames_ready([1, 2]) == 3  # frame 3 is receiver 0's second: not there
    table.learn(1, list(range(5, 40)))  # grows past its first size
    assert table.locate(39) == (1, 36)


def saving(**kw: object) -> Saving:
    params = {
        "base_path": "/data",
        "filename_prefix": "scan",
        "filename_format": "{filename_prefix}_{filename_rank}_{file_number:05d}{filename_suffix}",
        "filename_suffix": ".h5",
        "start_number": 0,
        "nb_frames_per_file": 10,
        "nx_entry_name": "entry_0000",
        "nx_instrument_name": "instrument",
        "nx_detector_name": "detector",
        "nb_dimensions": "dim_3d_or_4d",
        "file_exists_policy": "overwrite",
        **kw,
    }
    return Saving.from_params(params)


def test_master_file_layout_round_robin() -> None:
    total, maps = layout(RoundRobin((0, 1)).new_run(0), [25, 24], saving())
    assert total == 49
    assert [(m.file, m.start, m.step, m.count) for m in maps] == [
        ("scan_0_00000.h5", 0, 2, 10),
        ("scan_0_00001.h5", 20, 2, 10),
        ("scan_0_00002.h5", 40, 2, 5),
        ("scan_1_00000.h5", 1, 2, 10),
        ("scan_1_00001.h5", 21, 2, 10),
        ("scan_1_00002.h5", 41, 2, 4),
    ]
    assert saving().master_path == "/data/scan_master.h5"


def test_master_file_layout_dynamic() -> None:
    table = FrameTable(2)
    table.learn(0, [0, 2, 3])
    table.learn(1, [1, 4])
    total, maps = layout(table, [3, 1], saving(nb_frames_per_file=2))
    assert total == 4  # frame 4 is receiver 1's second frame, not saved
    got = {(m.file, tuple(m.indices)) for m in maps if m.indices is not None}
    assert got == {("scan_0_00000.h5", (0, 2)), ("scan_0_00001.h5", (3,)), ("scan_1_00000.h5", (1,))}


def test_pipeline_lookup() -> None:
    procs = [FakeProcessing(f"proc{i}", i, 2) for i in range(2)]
    proc_params = {"saving": saving().params | {"enabled": True}, "statistics": {}, "profiles": {}}
    pipe = RunPipeline("u", LEGACY, RoundRobin((0, 1)).new_run(10), procs, ["r0", "r1"], proc_params, 10, {})
    where = pipe.lookup(5, [5, 5], [2, 3])
    assert (where["receiver"], where["local_idx"], where["command"]) == ("r1", 2, "getFrame")
    assert where["hdf5"] == {
        "file": "/data/scan_1_00000.h5",
        "dataset": "entry_0000/instrument/detector/data",
        "index": 2,
    }
    assert pipe.lookup(4, [5, 5], [2, 3])["hdf5"] is None  # receiver 0 saved 2 frames only
    with pytest.raises(NotFound, match="not been acquired"):
        pipe.lookup(9, [4, 4], [0, 0])
    with pytest.raises(NotFound, match="past the end"):
        pipe.lookup(10, [5, 5], [0, 0])
    with pytest.raises(NotFound, match="no frame source"):
        pipe.lookup(1, [5, 5], [0, 0], "sparse")
    assert pipe.master_files() == {"frame": ["/data/scan_master.h5", "entry_0000/instrument/detector/data"]}


def test_multi_device_error_priority() -> None:
    errors = [DeviceError("x", "a"), DeviceTimeout("slow", "b"), SavingError("full", "c")]
    assert MultiDeviceError("Prepare", errors).reason == "DEVICE_TIMEOUT"
    errors.append(DeviceOffline("gone", "d"))
    err = MultiDeviceError("Prepare", errors)
    assert err.reason == "DEVICE_OFFLINE" and "a, b, c, d" in str(err)
    assert MultiDeviceError("Stop", [SavingError("full", "c")]).reason == "SAVING_ERROR"


def devfailed(reason: str, desc: str, cls: type = tango.DevFailed) -> tango.DevFailed:
    try:
        tango.Except.throw_exception(reason, desc, "test")
    except tango.DevFailed as exc:
        return cls(*exc.args) if cls is not tango.DevFailed else exc
    raise AssertionError


def test_translate_tango_errors() -> None:
    lima = translate(devfailed("LIMA_Exception", lima_error("sensor too hot", device="x")), "d/e/f", "Prepare")
    assert isinstance(lima, DeviceError) and lima.device == "d/e/f" and "sensor too hot" in str(lima)
    assert isinstance(translate(devfailed("API_DeviceTimedOut", "t"), "d", "read"), DeviceTimeout)
    assert isinstance(translate(devfailed("API_CantConnectToDevice", "c"), "d", "read"), DeviceOffline)
    assert isinstance(translate(TimeoutError(), "d", "read"), DeviceTimeout)
    with pytest.raises(TypeError, match="not a Tango failure"):
        translate(KeyError("bug"), "d", "read")
