"""Processing plugins (``det.proc_plugin``) in a real Bliss 2.4 session: each plugin's
counters equal what the conductor gives for the run (``GetReducedData`` rows,
``GetFrame`` frames), switching keeps each plugin's settings, Failing fails with its
reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from lima2_conductor.core.lima2 import FILL_FACTOR_DTYPE, PEAK_COUNTER_DTYPE

NPOINTS = 6


@pytest.fixture
def det(bliss_env: Any) -> Iterator[Any]:
    from bliss.controllers.lima.roi import Roi

    det = bliss_env.det
    det.acquisition.reset()
    for name in ("smx", "xpcs", "fai", "legacy"):
        det.proc_plugin = name
        det.processing.saving.reset()
        det.processing.roi_profiles.clear()
        det.processing.roi_stats.rois = [Roi(10, 20, 60, 40, name="r1")]
    det.proc_plugin = "failing"
    det.processing.clear()
    det.proc_plugin = "legacy"
    yield det
    det.proc_plugin = "legacy"


def values(scan: Any, name: str) -> np.ndarray:
    return np.asarray(scan.streams[name][:])


def live_frame(det: Any, idx: int, source: str) -> np.ndarray:
    frame, got = det.client.frame(idx, source)
    assert got == idx or idx == -1
    return frame[0]


def check_roi_stats(scan: Any, det: Any) -> None:
    rows = det.client.reduced_rows("roi_stats", 0, 0)
    assert list(rows["frame_idx"]) == list(range(NPOINTS))
    for stat in ("sum", "avg", "std", "min", "max"):
        np.testing.assert_array_equal(values(scan, f"det:roi_statistics:r1_{stat}"), rows[stat])


def check_images(scan: Any, det: Any, name: str, source: str = "") -> None:
    """Frame i and -1 of the counter's stream are the conductor's frames of the run."""
    stream = scan.streams[f"det:{name}"]
    assert len(stream) == NPOINTS
    for idx in (0, NPOINTS - 1):
        np.testing.assert_array_equal(stream[idx], live_frame(det, idx, source or name))
    np.testing.assert_array_equal(stream[-1], live_frame(det, NPOINTS - 1, source or name))


def test_unknown_plugin_is_refused_with_the_valid_names(det: Any) -> None:
    with pytest.raises(ValueError, match="choose one of legacy, smx, xpcs, failing, fai"):
        det.proc_plugin = "saxs"
    assert det.proc_plugin == "legacy"
    det.proc_plugin = "SMX"  # Bliss's ProcPlugin names, any case
    assert det.proc_plugin == "smx"
    det.proc_plugin = "LimaProcessingXpcs"  # and the class names
    assert det.proc_plugin == "xpcs"


def test_a_class_the_servers_do_not_offer_is_refused(det: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lima2 servers publish each class's proc_params schema and Version in the Tango
    database, and the conductor tells them (``processing_classes``): a class without them,
    or of a version the plugins do not support, is refused with the reason."""
    import tango

    db = tango.Database()
    version = db.get_class_property("LimaProcessingFai", "Version")["Version"]
    db.put_class_property("LimaProcessingFai", {"Version": ["core-2.0.0"]})
    try:
        with pytest.raises(ValueError, match=r"'fai' refused: LimaProcessingFai version core-2.0.0 is not one of"):
            det.proc_plugin = "fai"
    finally:
        db.put_class_property("LimaProcessingFai", {"Version": list(version)})
    assert det.proc_plugin == "legacy"
    det.proc_plugin = "fai"


def test_legacy(det: Any, bliss_env: Any) -> None:
    import json

    from bliss.common.scans import loopscan

    p = det.processing
    p.mask.path = "/data/mask.edf"
    p.max_countrate_protection.max_countrate = 5e5
    p.saving.nb_dimensions = "dim_4d"
    scan = loopscan(NPOINTS, 0.01, det, det.counters.input_frame)
    assert det.client.read("processing_class") == "LimaProcessingLegacy"
    check_roi_stats(scan, det)
    check_images(scan, det, "frame")
    check_images(scan, det, "input_frame")
    sent = json.loads(bliss_env.receiver(1).proc_params)  # what the receivers were given
    assert sent["class_name"] == "LimaProcessingLegacy"
    assert sent["mask"] == {"enabled": False, "path": "/data/mask.edf"}
    assert sent["max_countrate_protection"]["max_countrate"] == 5e5
    assert sent["saving"]["enabled"] and sent["saving"]["filename_prefix"].endswith("frame")  # the scan saves
    assert sent["saving"]["nb_dimensions"] == "dim_4d"
    assert sent["statistics"]["rect_rois"][0]["dimensions"] == {"x": 60, "y": 40}
    with pytest.raises(ValueError):
        p.saving.nb_dimensions = "dim_2d"
    with pytest.raises(TypeError):
        p.accumulation.nb_frames = 1.5
    p.mask.reset()
    p.max_countrate_protection.reset()
    p.saving.reset()


def test_smx(det: Any) -> None:
    from bliss.common.scans import loopscan

    det.proc_plugin = "smx"
    scan = loopscan(NPOINTS, 0.01, det)
    assert det.client.read("processing_class") == "LimaProcessingSmx"
    rows = det.client.reduced_rows("nb_peaks", 0, 0, 0, PEAK_COUNTER_DTYPE)
    assert list(rows["frame_idx"]) == list(range(NPOINTS))
    got = values(scan, "det:others:nb_peaks")
    np.testing.assert_array_equal(got, rows["nb_peaks"])
    assert got.dtype == np.int32
    check_roi_stats(scan, det)
    check_images(scan, det, "frame")
    check_images(scan, det, "sparse_frame", "sparse_frame:dense")


def test_xpcs(det: Any) -> None:
    from bliss.common.scans import loopscan

    det.proc_plugin = "xpcs"
    scan = loopscan(NPOINTS, 0.01, det, det.counters.input_frame)
    assert det.client.read("processing_class") == "LimaProcessingXpcs"
    rows = det.client.reduced_rows("fill_factor", 0, 0, 0, FILL_FACTOR_DTYPE)
    np.testing.assert_array_equal(values(scan, "det:others:fill_factor"), rows["fill_factor"])
    assert len(rows) == NPOINTS
    check_roi_stats(scan, det)
    for name in ("frame", "input_frame", "accumulated_frame"):
        check_images(scan, det, name)
    check_images(scan, det, "sparse_frame", "sparse_frame:dense")


def test_fai(det: Any) -> None:
    from bliss.common.scans import loopscan

    det.proc_plugin = "fai"
    assert [c.name for c in det.counter_groups.images] == ["frame", "fai_averint"]
    scan = loopscan(NPOINTS, 0.01, det)
    assert det.client.read("processing_class") == "LimaProcessingFai"
    curves = scan.streams["det:fai_averint"]
    assert len(curves) == NPOINTS
    for idx in range(NPOINTS):
        expected = live_frame(det, idx, "fai_averint:dense").reshape(-1)
        np.testing.assert_array_equal(curves[idx], expected)
    assert curves[-1].ndim == 1
    check_roi_stats(scan, det)
    check_images(scan, det, "frame")


def test_switching_keeps_each_plugins_settings(det: Any) -> None:
    from bliss.common.scans import loopscan

    det.proc_plugin = "smx"
    det.processing.fai.cutoff_pick = 6.5
    det.processing.roi_stats.set("r2", 0, 0, 16, 16)
    det.proc_plugin = "legacy"
    assert "r2" not in det.processing.roi_stats
    assert "r2_sum" not in det.counters._fields and "nb_peaks" not in det.counters._fields
    loopscan(2, 0.01, det)
    det.proc_plugin = "smx"
    assert det.processing.fai.cutoff_pick == 6.5
    assert "Plugin smx (LimaProcessingSmx)" in det.__info__() and "cutoff_pick" in det.__info__()
    assert det.processing.roi_stats["r2"].width == 16
    assert {"nb_peaks", "r2_sum"} <= set(det.counters._fields)
    scan = loopscan(NPOINTS, 0.01, det)
    np.testing.assert_array_equal(
        values(scan, "det:roi_statistics:r2_sum"), det.client.reduced_rows("roi_stats", 1, 0)["sum"]
    )
    del det.processing.roi_stats["r2"]
    det.processing.fai.reset()


def test_roi_api_of_bliss(det: Any) -> None:
    rois = det.processing.roi_stats
    rois.set_rect("b", 1, 2, 3, 4)
    rois.set_arc("c", 100, 100, 5, 20, 0, 180)
    assert (rois["b"].x, rois["b"].height) == (1, 4) and rois["c"].r2 == 20
    with pytest.raises(KeyError, match="no ROI 'zz'"):
        del rois["zz"]
    del rois["b"]
    del rois["c"]
    det.processing.roi_profiles.set("p", 0, 10, 256, 4, "horizontal")
    assert det.counters.p_sum.shape == (256,)
    det.processing.roi_profiles.clear()


def test_failing_scan_fails_with_the_reason_and_the_next_scan_works(det: Any) -> None:
    from bliss.common.scans import loopscan

    det.proc_plugin = "failing"
    assert list(det.counters._fields) == ["frame"]  # Bliss's; the class makes no frames
    assert "failed_frame_idx" in det.processing.__info__()
    det.processing.failed_frame_idx = 3
    with pytest.raises(Exception, match="the Lima2 acquisition failed") as info:
        loopscan(NPOINTS, 0.01, det)
    assert "frame 3" in str(info.value), str(info.value)
    det.processing.clear()
    assert det.processing.failed_frame_idx == 0
    det.proc_plugin = "legacy"
    scan = loopscan(NPOINTS, 0.01, det)
    check_roi_stats(scan, det)


def test_plugin_saving_names_each_source(det: Any) -> None:
    """A saving scan saves every frame source of the plugin in the scan, each under the
    scan's prefix plus its name; the frames read back from the master file."""
    import h5py
    from bliss.common.scans import loopscan

    from lima2_conductor.cli.launcher import wait_for

    det.proc_plugin = "fai"
    scan = loopscan(NPOINTS, 0.01, det, save=True)
    masters = det.client.read_json("master_files")
    assert set(masters) == {"frame", "fai_averint"}
    assert masters["fai_averint"][0].endswith("fai_averint_master.h5")
    path, dataset = masters["frame"]
    wait_for(lambda: h5py.File(path, "r")[dataset].shape[0] == NPOINTS, 30, "master file")
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(scan.streams["det:frame"][2], np.asarray(f[dataset][2]).reshape(-1, 256)[-256:])
    path, dataset = masters["fai_averint"]
    wait_for(lambda: h5py.File(path, "r")[dataset].shape[0] == NPOINTS, 30, "master file")
    np.testing.assert_array_equal(
        scan.streams["det:fai_averint"][3], live_frame(det, 3, "fai_averint:dense").reshape(-1)
    )


@pytest.mark.parametrize(
    ("plugin", "name", "source"),
    [("xpcs", "sparse_frame", "sparse_frame:dense"), ("fai", "fai_averint", "fai_averint:dense")],
)
def test_image_streams_during_the_scan(det: Any, plugin: str, name: str, source: str) -> None:
    """While the scan runs, a blissdata client reads the plugin's frames by index and the
    newest with -1 (from the conductor's GetFrame)."""
    import gevent
    from bliss.common.scans import loopscan

    from lima2_conductor.cli.launcher import wait_for

    det.proc_plugin = plugin
    scan = loopscan(60, 0.05, det, run=False)
    task = gevent.spawn(scan.run)
    try:
        wait_for(lambda: f"det:{name}" in scan.streams and len(scan.streams[f"det:{name}"]) >= 3, 30, "3 frames")
        stream = scan.streams[f"det:{name}"]
        running = not task.ready()
        np.testing.assert_array_equal(stream[1].reshape(-1), live_frame(det, 1, source).reshape(-1))
        newest = stream[-1]
        assert newest.shape == stream[0].shape
        assert running, "the scan ended before its frames were read"
    finally:
        task.get(timeout=60)
