"""Failures and aborts: the scan names the failing device; the next scan needs no manual step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lima2_conductor.cli.launcher import wait_for

from .test_scans import check_rois, det  # noqa: F401 - fixture


def test_receiver_failure_fails_the_scan_then_the_next_scan_works(det: Any, bliss_env: Any) -> None:  # noqa: F811
    from bliss.common.scans import loopscan

    receiver = bliss_env.receiver(1)
    receiver.write_attribute("sim_fail_at_frame", 11)
    with pytest.raises(Exception) as info:
        loopscan(30, 0.01, det)
    assert "id00/limareceiver/simulator2" in str(info.value)
    assert det.client.run_state() == "FAULT"

    scan = loopscan(10, 0.01, det)  # resets the failed run by itself
    assert det.client.run_state() == "DONE"
    check_rois(scan, det, 10)


def test_abort_stops_the_run_then_the_next_scan_works(det: Any) -> None:  # noqa: F811
    import gevent
    from bliss.common.scans import loopscan

    scan = loopscan(500, 0.01, det, run=False)
    task = gevent.spawn(scan.run)
    wait_for(lambda: int(det.client.read("nb_frames_acquired")) >= 5, 30, "5 frames")
    task.kill(KeyboardInterrupt, block=True, timeout=30)
    assert det.client.run_state() in ("STOPPED", "DONE")
    assert int(det.client.read("nb_frames_acquired")) < 500

    scan = loopscan(5, 0.01, det)
    assert det.client.run_state() == "DONE"
    check_rois(scan, det, 5)


def test_live_frames_while_the_scan_runs(det: Any) -> None:  # noqa: F811
    import gevent
    from bliss.common.scans import loopscan

    scan = loopscan(60, 0.02, det, run=False)
    task = gevent.spawn(scan.run)
    try:
        wait_for(lambda: len(scan.streams["det:frame"]) >= 3, 30, "3 frames in the stream")
        stream = scan.streams["det:frame"]
        assert not stream.is_sealed()
        newest = stream[-1]  # the newest frame, from the conductor
        assert newest.shape == (256, 256)
        first, idx = det.client.frame(0)
        assert idx == 0
        np.testing.assert_array_equal(stream[0], first[0])
        assert stream.get_last_live_image().array.shape == (256, 256)
    finally:
        task.join(timeout=60)
    assert det.client.run_state() == "DONE"
