"""The package and its pure helpers, without a Bliss session."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lima2_conductor.bliss import params


def test_importing_the_package_needs_no_bliss() -> None:
    code = (
        "import sys, lima2_conductor.bliss as b\n"
        "assert 'bliss' not in sys.modules and 'gevent' not in sys.modules, sorted(sys.modules)\n"
        "assert b.__all__ == ['Lima2']\n"
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


ROOT = Path(__file__).resolve().parents[2]
BLISS_VENV = ROOT / ".venv-bliss"
BLISS_PYTHON = BLISS_VENV / "bin" / "python"


def _has_bliss(python: Path) -> bool:
    code = "import importlib.metadata as m; m.distribution('bliss')"
    return python.exists() and subprocess.run([str(python), "-c", code], capture_output=True).returncode == 0


def bliss_python() -> Path:
    """The interpreter of a Bliss environment: this one if it has Bliss, else
    ``.venv-bliss``'s; the test is skipped only when neither has Bliss."""
    for python in (Path(sys.executable), BLISS_PYTHON):
        if _has_bliss(python):
            return python
    pytest.skip(f"Bliss is not installed here nor in {BLISS_VENV} (.ci/bliss creates it)")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_the_bliss_extra_needs_only_what_bliss_has() -> None:
    """Every requirement of ``[bliss]`` is one of Bliss's own, unpinned: installing it
    into a beamline's Bliss environment changes neither Bliss nor its dependencies."""
    python = bliss_python()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    code = "import importlib.metadata as m, json; print(json.dumps(m.requires('bliss') or []))"
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout
    bliss_needs = {_name(r) for r in json.loads(out)}
    for requirement in extras.get("bliss", []):
        assert _name(requirement) in bliss_needs, f"[bliss] needs {requirement!r}, which Bliss does not"
        assert "==" not in requirement, f"[bliss] pins {requirement!r}"


def test_the_bliss_extra_installs_nothing_into_a_bliss_venv(tmp_path: Path) -> None:
    """``pip install --dry-run .[bliss]`` in the Bliss venv, offline: the project is the
    only thing to install (a missing or conflicting requirement fails the resolution)."""
    python = bliss_python()
    report = tmp_path / "report.json"
    cmd = [str(python), "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation"]
    cmd += ["--quiet", "--report", str(report), f"{ROOT}[bliss]"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    install = json.loads(report.read_text())["install"]
    names = [(item["metadata"]["name"], item["metadata"]["version"]) for item in install]
    assert [name for name, _ in names] == ["lima2-tango-conductor"], names
