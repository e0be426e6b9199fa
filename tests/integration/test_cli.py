"""The command line: the demo end to end, and the shell helpers on a live conductor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tango

from lima2_conductor.cli import namespaces, run_acquisition
from lima2_conductor.launcher import CONDUCTOR, LocalSystem
from lima2_conductor.simulator.frames import stamped_index


def test_demo_runs_one_acquisition_and_stops_everything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TANGO_HOST"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lima2_conductor.cli",
            "demo",
            "--receivers",
            "3",
            "--nb-frames",
            "31",
            "--expo-time",
            "0.005",
            "--saving-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "DONE" in out.stdout and "frames transferred 31" in out.stdout
    assert "All processes stopped." in out.stdout
    assert (tmp_path / "lima2_master.h5").exists()


def test_shell_helpers(system2c: LocalSystem) -> None:
    c = tango.DeviceProxy(CONDUCTOR)
    c.Stop()
    c.Reset()
    ns = namespaces(c)
    assert ns["detector"].info()["plugin"] == "Simulator"
    result = run_acquisition(
        c,
        20,
        0.002,
        params={
            "processing": {
                "statistics": {
                    "enabled": True,
                    "rect_rois": [{"topleft": {"x": 0, "y": 8}, "dimensions": {"x": 4, "y": 4}}],
                }
            }
        },
        progress=False,
    )
    assert result["run_state"] == "DONE" and result["nb_frames_xferred"] == 20
    assert stamped_index(ns["pipeline"].frame(7)) == 7
    rows = ns["pipeline"].reduced_data("roi_stats", 0)
    np.testing.assert_array_equal(rows["frame_idx"], np.arange(20))
    assert ns["acquisition"].state()[1] == "DONE"
