"""Scans of a real Bliss 2.4 session on the conductor: points, counter values, run state."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lima2_conductor.cli.launcher import wait_for

STATS = ("sum", "avg", "std", "min", "max")


@pytest.fixture
def det(bliss_env: Any) -> Any:
    from bliss.controllers.lima.roi import ArcRoi, Roi

    det = bliss_env.det
    det.acquisition.reset()
    det.processing.saving.reset()
    det.processing.roi_profiles.clear()
    det.processing.roi_stats.rois = [Roi(10, 20, 60, 40, name="r1"), ArcRoi(128, 128, 10, 60, 0, 90, name="a1")]
    return det


def values(scan: Any, name: str) -> np.ndarray:
    return np.asarray(scan.streams[name][:])


def check_rois(scan: Any, det: Any, npoints: int) -> None:
    """Every ROI counter equals the conductor's GetReducedData rows of the run."""
    for channel, roi in enumerate(det.stats_rois()):
        rows = det.client.reduced_rows("roi_stats", channel, 0)
        assert len(rows) == npoints
        assert list(rows["frame_idx"]) == list(range(npoints))
        for stat in STATS:
            got = values(scan, f"det:roi_statistics:{roi.name}_{stat}")
            assert len(got) == npoints, (roi.name, stat)
            np.testing.assert_array_equal(got, rows[stat], err_msg=f"{roi.name}_{stat}")


def test_loaded_from_yaml(det: Any) -> None:
    from lima2_conductor.bliss import Lima2

    assert isinstance(det, Lima2)
    names = list(det.counters._fields)
    assert names[0] == "frame"
    assert {f"r1_{s}" for s in STATS} | {f"a1_{s}" for s in STATS} <= set(names)
    # as Bliss's Lima2: the input frames are an image counter that det alone scans
    assert list(det.counter_groups.images._fields) == ["frame", "input_frame"]
    assert list(det.counter_groups.default._fields) == names
    assert "r1_sum" in det.counter_groups.rois._fields and "frame" not in det.counter_groups.rois._fields
    info = det.__info__()
    for text in (
        "State:",
        "Status:",
        "round_robin",
        "id00/limareceiver/simulator2",
        "r1:",
        "a1:",
        "Saving",
        "Last run",
    ):
        assert text in info, text


def test_rois_persist_in_beacon(det: Any, bliss_env: Any) -> None:
    from lima2_conductor.bliss.settings import RoiList

    again = RoiList("lima2_conductor:det:roi_stats", lambda: None)
    assert [r.name for r in again.rois] == ["r1", "a1"]
    with pytest.raises(ValueError):
        det.acquisition.trigger_mode = "sometimes"


def test_ct(det: Any) -> None:
    from bliss.common.scans import ct

    scan = ct(0.01, det)
    assert det.client.run_state() == "DONE"
    assert det.last_run["trigger_mode"] == "internal"
    check_rois(scan, det, 1)


def test_loopscan(det: Any) -> None:
    from bliss.common.scans import loopscan

    scan = loopscan(30, 0.01, det)
    assert det.client.run_state() == "DONE"
    assert det.last_run["trigger_mode"] == "software"
    assert det.last_run["frames"] == 30
    check_rois(scan, det, 30)
    stream = scan.streams["det:input_frame"]  # scanned by default, as Bliss's Lima2
    assert len(stream) == 30
    np.testing.assert_array_equal(stream[29], det.client.frame(29, "input_frame")[0][0])


def test_ascan(det: Any, bliss_env: Any) -> None:
    from bliss.common.scans import ascan

    scan = ascan(bliss_env.mot, 0, 1, 19, 0.01, det)
    assert det.client.run_state() == "DONE"
    np.testing.assert_allclose(values(scan, "axis:mot"), np.linspace(0, 1, 20), atol=1e-3)
    check_rois(scan, det, 20)


def test_dscan_with_diode(det: Any, bliss_env: Any) -> None:
    from bliss.common.scans import dscan

    start = bliss_env.mot.position
    scan = dscan(bliss_env.mot, -0.5, 0.5, 4, 0.01, det, bliss_env.diode)
    assert bliss_env.mot.position == pytest.approx(start)
    assert len(values(scan, "simulation_diode_sampling_controller:diode")) == 5
    check_rois(scan, det, 5)


def test_timescan(det: Any) -> None:
    from bliss.common.scans import timescan

    scan = timescan(0.005, det.counters.r1_sum, det.counters.r1_max, npoints=50)
    assert det.client.run_state() == "DONE"
    rows = det.client.reduced_rows("roi_stats", 0, 0)
    np.testing.assert_array_equal(values(scan, "det:roi_statistics:r1_sum"), rows["sum"])
    assert len(rows) == 50


def test_profiles(det: Any) -> None:
    from bliss.common.scans import loopscan
    from bliss.controllers.lima.roi import RoiProfile

    det.processing.roi_profiles.rois = [
        RoiProfile(0, 100, 256, 20, mode="horizontal", name="ph"),
        RoiProfile(100, 0, 8, 200, mode="vertical", name="pv"),
    ]
    assert det.counters.ph_sum.shape == (256,)
    scan = loopscan(5, 0.01, det.counters.ph_avg, det.counters.pv_sum, det.counters.r1_sum)
    ph = det.client.reduced_rows("roi_profile", 0, 0).reshape(5, 256)
    pv = det.client.reduced_rows("roi_profile", 1, 0).reshape(5, 200)
    np.testing.assert_array_equal(values(scan, "det:roi_profiles:ph_avg"), ph["avg"])
    np.testing.assert_array_equal(values(scan, "det:roi_profiles:pv_sum"), pv["sum"])


def test_saving_follows_the_scan(det: Any) -> None:
    import h5py
    from bliss.common.scans import loopscan, sct

    scan = loopscan(5, 0.01, det, save=True)
    masters = det.client.read_json("master_files")
    path, dataset = masters["frame"]
    assert "input_frame" not in masters  # streamed, never saved (as Bliss's Lima2)
    assert path.startswith(str(scan.scan_saving.get_path()))
    wait_for(lambda: h5py.File(path, "r")[dataset].shape[0] == 5, 30, "master file")
    with h5py.File(path, "r") as f:
        frames = np.asarray(f[dataset])
    live, _ = det.client.frame(4)
    np.testing.assert_array_equal(frames[4], live[0])
    meta = next(d["metadata"] for k, d in scan.scan_info["devices"].items() if k.endswith(":det"))
    assert (meta["master_file"], meta["master_dataset"]) == (path, dataset)
    assert meta["acq_uuid"] == det.client.read("acq_uuid")
    stream = scan.streams["det:frame"]
    assert len(stream) == 5
    np.testing.assert_array_equal(stream[4], frames[4])  # sealed: from the master file
    np.testing.assert_array_equal(stream[-1], frames[4])
    np.testing.assert_array_equal(stream[1:3], frames[1:3])
    assert det.last_run["run_state"] == "DONE"

    sct(0.01, det)
    assert det.client.read_json("master_files")  # sct saves
    scan = loopscan(3, 0.01, det, save=False)
    assert det.client.read_json("master_files") == {}


def test_internal_trigger_prepares_each_point(det: Any) -> None:
    from bliss.common.scans import loopscan

    det.acquisition.trigger_mode = "internal"
    scan = loopscan(3, 0.01, det.counters.r1_sum)
    assert det.last_run["trigger_mode"] == "internal" and det.last_run["frames"] == 1
    assert det.client.run_state() == "DONE"
    got = values(scan, "det:roi_statistics:r1_sum")
    assert len(got) == 3
    assert got[-1] == det.client.reduced_rows("roi_stats", 0, 0)["sum"][0]


def test_internal_trigger_step_scan_saves_each_point(det: Any) -> None:
    """One run per point (as Bliss's Lima2 prepares each point in internal trigger): each
    point saves under the scan's prefix plus its number, so no run meets another's files."""
    import h5py
    from bliss.common.scans import loopscan

    det.acquisition.trigger_mode = "internal"
    scan = loopscan(3, 0.01, det, save=True)
    assert det.client.run_state() == "DONE"
    meta = next(d["metadata"] for k, d in scan.scan_info["devices"].items() if k.endswith(":det"))
    paths = meta["master_files"]
    assert len(paths) == 3 and len(set(paths)) == 3
    assert [p.endswith(f"det_frame_{i:04d}_master.h5") for i, p in enumerate(paths)] == [True] * 3
    stream = scan.streams["det:frame"]
    assert len(stream) == 3
    for i, path in enumerate(paths):
        wait_for(lambda path=path: h5py.File(path, "r")[meta["master_dataset"]].shape[0] == 1, 30, path)
        with h5py.File(path, "r") as f:
            np.testing.assert_array_equal(stream[i], f[meta["master_dataset"]][0])
    assert len(values(scan, "det:roi_statistics:r1_sum")) == 3


def test_internal_trigger_step_scan_stream_counts_every_point(det: Any) -> None:
    from bliss.common.scans import loopscan

    det.acquisition.trigger_mode = "internal"
    scan = loopscan(10, 0.01, det, save=False)
    assert len(scan.streams["det:frame"]) == 10
    assert len(values(scan, "det:roi_statistics:r1_sum")) == 10
    from blissdata.exceptions import IndexNoMoreThereError

    with pytest.raises(IndexNoMoreThereError):  # not saved: the conductor holds only the last point's run
        scan.streams["det:frame"][0]


def test_frame_type_before_any_run(det: Any) -> None:
    """Before any run (a Reset forgets it) ``det`` shows the frames' type, not the first
    type the detector offers."""
    from bliss.common.scans import ct

    det.client.proxy.Reset()
    assert det.client.read_json("frame_channels") == {}
    det._cache_at = 0.0
    assert det.counters.frame.dtype == np.dtype("uint16")
    assert "256 x 256 gray16" in det.__info__()
    ct(0.01, det)
    frame, _ = det.client.frame(0)
    assert frame.dtype == det.counters.frame.dtype


def test_one_value_per_point(det: Any) -> None:
    """A step scan takes one frame per point, as Bliss's Lima2 controller: the counters
    have one value per point, whatever an earlier version stored as frames per trigger."""
    from bliss.common.scans import loopscan

    with pytest.raises(ValueError, match="one frame per point"):
        det.acquisition.nb_frames_per_trigger = 3
    det.acquisition._store["nb_frames_per_trigger"] = 3  # as stored by an earlier version
    scan = loopscan(4, 0.01, det)
    assert det.last_run["frames"] == 4
    check_rois(scan, det, 4)


def test_a_roi_outside_the_frame_is_refused_when_defined(det: Any) -> None:
    from bliss.controllers.lima.roi import ArcRoi, Roi, RoiProfile

    before = [r.name for r in det.processing.roi_stats.rois]
    with pytest.raises(ValueError, match=r"ROI 'big': 200,10 100x20 is outside the 256x256 frame"):
        det.processing.roi_stats.rois = [Roi(10, 20, 60, 40, name="r1"), Roi(200, 10, 100, 20, name="big")]
    with pytest.raises(ValueError, match="ROI 'far': the arc lies outside"):
        det.processing.roi_stats.add(ArcRoi(1000, 1000, 1, 5, 0, 90, name="far"))
    with pytest.raises(ValueError, match="ROI 'p': "):
        det.processing.roi_profiles.rois = [RoiProfile(0, 250, 256, 20, mode="horizontal", name="p")]
    assert [r.name for r in det.processing.roi_stats.rois] == before  # nothing changed
    det.processing.roi_stats.add(Roi(196, 0, 60, 256, name="edge"))  # up to the last pixel


def test_counter_paths_of_bliss_lima2_and_the_earlier_ones(det: Any) -> None:
    """``det:roi_statistics:<roi>_<stat>`` as with Bliss's Lima2 controller (scripts and plot
    selections use them); the earlier ``det:roi_stats:...`` through
    ``det.counter_groups.roi_stats``."""
    from bliss.common.scans import loopscan

    assert det.counters.r1_sum.fullname == "det:roi_statistics:r1_sum"
    scan = loopscan(3, 0.01, det)
    assert "det:roi_statistics:r1_sum" in scan.streams and "det:roi_stats:r1_sum" not in scan.streams
    scan = loopscan(3, 0.01, det.counter_groups.roi_stats)
    rows = det.client.reduced_rows("roi_stats", 0, 0)
    np.testing.assert_array_equal(values(scan, "det:roi_stats:r1_sum"), rows["sum"])
    rows = det.client.reduced_rows("roi_stats", 1, 0)
    np.testing.assert_array_equal(values(scan, "det:roi_stats:a1_max"), rows["max"])
