"""The package and its pure helpers, without a Bliss session."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lima2_conductor.bliss import params


def test_importing_the_package_needs_no_bliss() -> None:
    code = (
        "import sys, lima2_conductor.bliss as b\n"
        "assert 'bliss' not in sys.modules and 'gevent' not in sys.modules, sorted(sys.modules)\n"
        "assert b.__all__ == ['Lima2Conductor']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_processing_params_put_rectangles_before_arcs() -> None:
    rois = [params.ArcRoi("a", 10, 20, 1, 5, 0, 90), params.RectRoi("r", 1, 2, 3, 4)]
    out = params.processing_params(rois, [params.ProfileRoi("p", 0, 0, 8, 4, "vertical")], None)
    assert out["statistics"]["enabled"]
    assert out["statistics"]["rect_rois"] == [{"topleft": {"x": 1, "y": 2}, "dimensions": {"x": 3, "y": 4}}]
    assert out["statistics"]["arc_rois"][0]["center"] == {"x": 10.0, "y": 20.0}
    assert out["profiles"]["directions"] == ["vertical"]
    assert out["saving"] == {"enabled": False}
    assert [r.name for r in params.stats_order(rois)] == ["r", "a"]


def test_control_params_in_microseconds() -> None:
    acq = params.control_params(10, 0.0125, 0.001, "software")["acq"]
    assert (acq["nb_frames"], acq["expo_time"], acq["latency_time"], acq["trigger_mode"]) == (
        10,
        12500,
        1000,
        "software",
    )
    with pytest.raises(ValueError):
        params.control_params(1, 0.1, 0, "sometimes")


def test_default_trigger_mode_and_latency() -> None:
    assert params.default_trigger_mode({"trigger_modes": ["internal", "software"]}) == "software"
    assert params.default_trigger_mode({"trigger_modes": ["internal", "external"]}) == "internal"
    assert params.min_latency({"latency_time_range": [2000, 10**9]}) == pytest.approx(2e-6)


def test_failure_message_names_the_device_and_reason() -> None:
    text = params.failure_message(
        "det", "System FAULT, run FAULT\nFaulty: id00/limareceiver/simulator2 FAULT", "", ["id00/x: boom"]
    )
    assert text.splitlines()[0] == "det: the Lima2 acquisition failed"
    assert "id00/x: boom" in text and "id00/limareceiver/simulator2" in text


def test_roi_from_dict() -> None:
    roi = params.roi_from_dict(
        {"kind": "profile", "name": "p", "x": 1, "y": 2, "width": 3, "height": 4, "mode": "vertical"}
    )
    assert roi == params.ProfileRoi("p", 1, 2, 3, 4, "vertical") and roi.length == 4
