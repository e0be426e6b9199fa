"""Pipeline services end to end: master file, reduced data, lookup and frame fetch,
against real simulators and h5py, with 1, 2 and 3 receivers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import tango

from lima2_conductor.cli.launcher import Layout, LocalSystem, wait_for
from lima2_conductor.core.devencoded import decode_frame, decode_rows
from lima2_conductor.core.reduced_data import STATS_DTYPE
from lima2_conductor.simulator.frames import FrameGenerator, receiver_of, stamped_index
from lima2_conductor.simulator.reduction import Reducer
from tests.conftest import DEFAULT, DYNAMIC, SINGLE, THREE, start

RECT = {"topleft": {"x": 20, "y": 30}, "dimensions": {"x": 50, "y": 40}}
ARC = {"center": {"x": 64.0, "y": 64.0}, "r1": 5.0, "r2": 30.0, "a1": 0.0, "a2": 180.0}
PROFILE = {"topleft": {"x": 10, "y": 10}, "dimensions": {"x": 60, "y": 8}}


@pytest.fixture(scope="module", params=[SINGLE, DEFAULT, THREE], ids=["1-receiver", "2-receivers", "3-receivers"])
def layout(request: pytest.FixtureRequest, tango_db: LocalSystem) -> Iterator[Layout]:
    for _ in start(tango_db, request.param, conductor=True):
        yield request.param


def conductor(layout: Layout) -> tango.DeviceProxy:
    c = tango.DeviceProxy(layout.conductor)
    wait_for(lambda: c.State() in (tango.DevState.ON, tango.DevState.STANDBY, tango.DevState.FAULT), 10, "conductor")
    c.Stop()
    c.Reset()
    return c


def params(data_dir: Path, per_file: int) -> dict:
    return {
        "control": {"det": {"nb_prefetch_frames": 8, "generator": {"gauss": {"grow_factor": 0.2}}}},
        "processing": {
            "saving": {
                "enabled": True,
                "base_path": str(data_dir),
                "nb_frames_per_file": per_file,
                "filename_prefix": "run",
            },
            "statistics": {"enabled": True, "rect_rois": [RECT], "arc_rois": [ARC]},
            "profiles": {"enabled": True, "rois": [PROFILE], "directions": ["horizontal"]},
        },
    }


def reduced(c: tango.DeviceProxy, name: str, channel: int, start: int = 0, max_rows: int = 0) -> np.ndarray:
    return decode_rows(c.GetReducedData([[channel, start, max_rows], [name]]), STATS_DTYPE)


def test_run_in_global_order(layout: Layout, data_dir: Path) -> None:
    c = conductor(layout)
    nb, per_file = (1001, 100) if layout.nb_receivers == 3 else (101, 10)
    c.acq_nb_frames = nb
    c.acq_expo_time = 0.0005
    p = params(data_dir, per_file)
    c.Prepare(json.dumps(p))
    c.Start()
    wait_for(lambda: c.run_state in ("DONE", "FAULT"), 60, "end of run")
    assert c.run_state == "DONE", c.Status()
    acq = json.loads(c.DefaultParams())["control"]
    acq["det"]["nb_prefetch_frames"], acq["det"]["generator"]["gauss"]["grow_factor"] = 8, 0.2
    gen = FrameGenerator(acq, *layout.sensor)
    width, height = layout.sensor

    # the master file restores global order across receivers and files
    master, dataset = json.loads(c.master_files)["frame"]
    assert master == str(data_dir / "run_master.h5")
    with h5py.File(master) as f:
        data = f[dataset]
        assert data.shape == (nb, height, width)
        stack = data[()]
        assert [stamped_index(frame) for frame in stack] == list(range(nb))
        np.testing.assert_array_equal(stack, gen.frames(np.arange(nb))[:, 0])
        assert f["entry_0000/measurement/data"].shape == data.shape
        assert f["entry_0000"].attrs["NX_class"] == "NXentry"
        assert f["entry_0000/conductor/nb_frames"][()] == nb
        assert f["entry_0000/conductor/uuid"][()].decode() == c.acq_uuid
    assert not list(data_dir.glob("*.tmp"))

    # reduced data: every row in global order, equal to the statistics of frames(i)
    red = Reducer.from_params(
        {
            "statistics": {"enabled": True, "rect_rois": [RECT], "arc_rois": [ARC]},
            "profiles": {"enabled": True, "rois": [PROFILE], "directions": ["horizontal"]},
        },
        width,
        height,
    )
    expected = red.statistics(gen.frames(np.arange(nb)), np.arange(nb), 0).reshape(nb, 2)
    assert c.reduced_data_ready == nb
    channels = json.loads(c.reduced_data_channels)
    assert channels["roi_stats"]["channels"] == 2 and channels["roi_profile"]["shapes"] == [[60]]
    for k in range(2):
        rows = reduced(c, "roi_stats", k)
        assert len(rows) == nb
        np.testing.assert_array_equal(rows["frame_idx"], np.arange(nb))
        np.testing.assert_allclose(rows["avg"], expected[:, k]["avg"], rtol=1e-6)
        np.testing.assert_allclose(rows["sum"], expected[:, k]["sum"], rtol=1e-9)
    np.testing.assert_array_equal(rows["recv_idx"], np.arange(nb) % layout.nb_receivers)
    prof = reduced(c, "roi_profile", 0, start=5, max_rows=7).reshape(7, 60)
    exp_prof = red.profile_rows(gen.frames(np.arange(5, 12)), np.arange(5, 12), 0).reshape(7, 60)
    np.testing.assert_allclose(prof["max"], exp_prof["max"])

    # lookup and fetch agree with the file
    for i in (0, 1, nb // 2, nb - 1):
        where = json.loads(c.Lookup(i))
        rank = i % layout.nb_receivers
        assert where["receiver"] == layout.receiver(rank) and where["local_idx"] == i // layout.nb_receivers
        assert where["processing_device"].endswith(f"@{rank}")
        with h5py.File(where["hdf5"]["file"]) as f:
            np.testing.assert_array_equal(f[where["hdf5"]["dataset"]][where["hdf5"]["index"]], gen.frame(i)[0])
        frame, idx = decode_frame(c.GetFrame([[i], ["frame"]]))
        assert idx == i
        np.testing.assert_array_equal(frame, gen.frame(i))
    assert json.loads(c.Lookup(-1))["frame_idx"] == nb - 1

    # bad requests: clear reasons, never a hang
    for call, reason in (
        (lambda: c.Lookup(nb), "NOT_FOUND"),
        (lambda: c.Lookup(-5), "PARAM_ERROR"),
        (lambda: c.GetFrame([[0], ["sparse"]]), "PARAM_ERROR"),
        (lambda: c.GetFrame([[0, 1], ["frame"]]), "PARAM_ERROR"),
        (lambda: c.GetReducedData([[0, 0, 0], ["peaks"]]), "NOT_FOUND"),
        (lambda: c.GetReducedData([[9, 0, 0], ["roi_stats"]]), "NOT_FOUND"),
        (lambda: c.GetReducedData([[0, -1, 0], ["roi_stats"]]), "PARAM_ERROR"),
    ):
        with pytest.raises(tango.DevFailed) as info:
            call()
        assert info.value.args[0].reason == reason
    assert len(reduced(c, "roi_stats", 0, start=nb)) == 0


def test_stopped_run_leaves_a_valid_master_file(layout: Layout, data_dir: Path) -> None:
    if layout.nb_receivers != 2:
        pytest.skip("one topology is enough")
    c = conductor(layout)
    p = params(data_dir, 50)
    # one software trigger gives 500 of the 1000 frames: the run cannot end before the
    # Stop, however late the Stop lands
    p["control"]["acq"] = {
        "nb_frames": 1000,
        "expo_time": 2000,
        "trigger_mode": "software",
        "nb_frames_per_trigger": 500,
    }
    c.Prepare(json.dumps(p))
    c.Start()
    c.Trigger()
    wait_for(lambda: c.nb_frames_saved >= 400, 20, "400 frames saved")
    c.Stop()
    wait_for(lambda: c.run_state in ("STOPPED", "FAULT"), 20, "stopped")
    assert c.run_state == "STOPPED", c.Status()
    per_receiver = json.loads(c.progress_counters)["nb_frames_saved"]["per_receiver"]
    saved = [per_receiver[name] for name in layout.receivers]
    assert 400 <= sum(saved) <= 500
    with h5py.File(json.loads(c.master_files)["frame"][0]) as f:
        data = f["entry_0000/instrument/detector/data"]
        # the global prefix on the receivers (frame 2k on the first, 2k+1 on the second):
        # how many frames apart the two stopped is not fixed
        assert data.shape[0] == min(2 * saved[0], 2 * saved[1] + 1)
        stamps = [stamped_index(frame) for frame in data[:, :1, :]]
        assert stamps == list(range(data.shape[0]))


def test_live_image(layout: Layout) -> None:
    if layout.nb_receivers != 2:
        pytest.skip("one topology is enough")
    c = conductor(layout)
    c.saving_enabled = False
    c.acq_nb_frames = 100
    c.acq_expo_time = 0.02
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.last_image_ready >= 0, 10, "a live image while running")
    wait_for(lambda: c.run_state == "DONE", 20, "end of run")
    wait_for(lambda: c.last_image_ready == 99, 5, "the run's last frame as the live image")
    image, ready = (a.value for a in c.read_attributes(["last_image", "last_image_ready"]))
    assert image.shape == (512, 512)
    assert stamped_index(image.astype(np.int64)) == ready == 99


@pytest.fixture(scope="module")
def dynamic(tango_db: LocalSystem) -> Iterator[Layout]:
    for _ in start(tango_db, DYNAMIC, conductor=True):
        yield DYNAMIC


def test_dynamic_dispatch(dynamic: Layout, data_dir: Path) -> None:
    """Receivers get frames in no fixed order: the frame-index channel places them."""
    c = conductor(dynamic)
    assert c.topology_name == "dynamic"
    nb = 77
    c.acq_nb_frames = nb
    c.acq_expo_time = 0.001
    p = params(data_dir, 10)
    p["control"]["det"]["dispatch_mode"] = "predictive_random"
    c.Prepare(json.dumps(p))
    c.Start()
    wait_for(lambda: c.run_state in ("DONE", "FAULT"), 30, "end of run")
    assert c.run_state == "DONE", c.Status()
    assert c.nb_frames_ready == nb
    acq = json.loads(c.DefaultParams())["control"]
    acq["det"]["nb_prefetch_frames"], acq["det"]["generator"]["gauss"]["grow_factor"] = 8, 0.2
    gen = FrameGenerator(acq, *dynamic.sensor)
    ranks = receiver_of(np.arange(nb), 2, "predictive_random")
    for i in (0, 1, 2, 5, 40, nb - 1):
        where = json.loads(c.Lookup(i))
        assert where["receiver"] == dynamic.receiver(int(ranks[i]))
        assert where["local_idx"] == int(np.sum(ranks[:i] == ranks[i]))
        np.testing.assert_array_equal(decode_frame(c.GetFrame([[i], ["frame"]]))[0], gen.frame(i))
    with h5py.File(json.loads(c.master_files)["frame"][0]) as f:
        stack = f["entry_0000/instrument/detector/data"][()]
    assert [stamped_index(frame) for frame in stack] == list(range(nb))
    rows = reduced(c, "roi_stats", 0)
    np.testing.assert_array_equal(rows["frame_idx"], np.arange(nb))
    np.testing.assert_array_equal(rows["recv_idx"], ranks)
