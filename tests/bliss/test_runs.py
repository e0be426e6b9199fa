"""Each scan has its own run: nothing of a failed or interrupted scan reaches the next one,
and a failure says the device and the reason."""

from __future__ import annotations

import os
from typing import Any

import gevent
import pytest
import tango

from lima2_conductor.cli.launcher import wait_for

from .test_scans import check_rois, det  # noqa: F401 - fixture

RECEIVER = "id00/limareceiver/simulator2"
REPEAT = int(os.environ.get("LIMA2_BLISS_FAILED_SCAN_REPEAT", "100"))


def test_a_failed_scan_leaves_nothing_to_the_next_one(det: Any, bliss_env: Any) -> None:  # noqa: F811
    """A receiver fails mid-scan (its last Trigger refused, the reply still pending when
    the scan ends); the next scan, ``ct`` or ``loopscan``, saving or not, always works."""
    from bliss.common.scans import ct, loopscan

    receiver = bliss_env.receiver(1)
    try:
        for i in range(REPEAT):
            receiver.write_attribute("sim_fail_at_frame", 5)
            with pytest.raises(Exception) as info:
                loopscan(20, 0.01, det, save=bool(i % 2))
            assert RECEIVER in str(info.value), f"iteration {i}: {info.value}"
            receiver.write_attribute("sim_fail_at_frame", -1)
            save = bool(i // 2 % 2)
            if i % 4 < 2:
                scan = ct(0.01, det, save=save)
                npoints = 1
            else:
                scan = loopscan(3, 0.01, det, save=save)
                npoints = 3
            assert det.client.run_state() == "DONE", i
            check_rois(scan, det, npoints)
    finally:
        receiver.write_attribute("sim_fail_at_frame", -1)


def test_a_refused_trigger_says_why(det: Any) -> None:  # noqa: F811
    """The run is stopped behind the scan's back: the next Trigger is refused and the
    scan's error carries the conductor's own text, the DevFailed as its cause."""
    from bliss.common.scans import loopscan

    before = det.client.read("acq_uuid")
    scan = loopscan(400, 0.01, det, run=False)
    task = gevent.spawn(scan.run)

    def running() -> bool:
        v = det.client.read_many(["acq_uuid", "run_state", "nb_frames_acquired"])
        return v["acq_uuid"] != before and v["run_state"] == "RUNNING" and v["nb_frames_acquired"] >= 3

    try:
        wait_for(running, 30, "3 frames of the scan's run")
        det.client.stop()
        task.join(timeout=60)
    finally:
        task.kill(block=True, timeout=30)
    error = task.exception
    assert error is not None, f"the scan ended without error: {scan.state.name}, run {det.client.run_state()}"
    text = str(error)
    assert text.startswith("det: ")
    assert "Trigger refused by id00/lima2conductor/simulator" in text
    assert "Trigger is not allowed while STOP" in text  # the conductor's reason (STOPPING or STOPPED)
    assert isinstance(error.__cause__, tango.DevFailed)


def test_a_failed_start_keeps_the_devfailed(det: Any, bliss_env: Any) -> None:  # noqa: F811
    from bliss.common.scans import loopscan

    receiver = bliss_env.receiver(1)
    receiver.write_attribute("sim_fail_start", True)
    with pytest.raises(Exception) as info:
        loopscan(5, 0.01, det)
    text = str(info.value)
    assert text.startswith("det: ") and "Start refused by id00/lima2conductor/simulator" in text
    assert RECEIVER in text
    assert isinstance(info.value.__cause__, tango.DevFailed)
    check_rois(loopscan(3, 0.01, det), det, 3)


def test_the_failure_of_a_replaced_run_never_shows_the_new_run(det: Any) -> None:  # noqa: F811
    """Another run is the conductor's now: the error says so, without its (healthy) status."""
    from bliss.common.scans import ct

    from lima2_conductor.bliss.client import Run

    ct(0.01, det)
    old = Run(det.client, "an-ended-run")
    text = str(det.client.failure("det", old, "Trigger refused by x: not allowed"))
    assert "Trigger refused by x: not allowed" in text
    assert "run an-ended-run is no longer the conductor's current run" in text
    assert "Conductor status" not in text


def test_ctrl_c_during_prepare_leaves_nothing_prepared(det: Any, bliss_env: Any) -> None:  # noqa: F811
    from bliss.common.scans import loopscan

    receiver = bliss_env.receiver(0)
    receiver.write_attribute("sim_prepare_delay", 1.0)
    try:
        scan = loopscan(10, 0.01, det, run=False)
        task = gevent.spawn(scan.run)
        wait_for(lambda: det.client.run_state() == "PREPARING", 30, "Prepare under way")
        task.kill(KeyboardInterrupt, block=True, timeout=30)
        wait_for(lambda: det.client.run_state() not in ("PREPARING", "CLOSING", "RESETTING"), 30, "Prepare ended")
        assert det.client.run_state() != "PREPARED"
    finally:
        receiver.write_attribute("sim_prepare_delay", 0.0)
    check_rois(loopscan(3, 0.01, det), det, 3)


def test_a_run_replaced_behind_the_scan_fails_it(det: Any) -> None:  # noqa: F811
    """Another client stops the scan's run and prepares its own: the scan fails, saying so,
    instead of waiting for a run that will never end for it."""
    from bliss.common.scans import loopscan

    before = det.client.read("acq_uuid")
    scan = loopscan(400, 0.05, det, run=False)
    task = gevent.spawn(scan.run)
    try:

        def running() -> bool:
            v = det.client.read_many(["acq_uuid", "run_state"])
            return v["acq_uuid"] not in (before, "") and v["run_state"] == "RUNNING"

        wait_for(running, 30, "the scan's run")
        other = tango.DeviceProxy(det.tango_name)
        other.Stop()
        wait_for(lambda: other.read_attribute("run_state").value == "STOPPED", 30, "the run stopped")
        other.Prepare("")
        task.join(timeout=60)
        assert task.ready(), "the scan still waits for its run"
    finally:
        task.kill(block=True, timeout=30)
    error = task.exception
    assert error is not None and str(error).startswith("det: "), error
