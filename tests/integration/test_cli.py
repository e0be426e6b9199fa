"""The command line: the demo end to end, and the shell helpers on a live conductor."""

from __future__ import annotations

import io
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tango

from lima2_conductor.cli import namespaces, run_acquisition
from lima2_conductor.launcher import CONDUCTOR, LocalSystem
from lima2_conductor.progress_display import ProgressDisplay, Snapshot, describe
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


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TANGO_HOST"}
    return subprocess.run(
        [sys.executable, "-m", "lima2_conductor.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "option",
    [
        ["--expo-time", "0"],
        ["--expo-time", "-0.1"],
        ["--expo-time", "nan"],
        ["--expo-time", "fast"],
        ["--nb-frames", "-1"],
        ["--receivers", "0"],
        ["--latency-time", "-1"],
        ["--fail-at-frame", "-2"],
    ],
)
def test_bad_demo_options_are_argparse_errors(option: list[str]) -> None:
    out = _cli("demo", *option)
    assert out.returncode == 2
    assert f"argument {option[0]}" in out.stderr and "error:" in out.stderr
    assert "Traceback" not in out.stderr and "DevFailed" not in out.stderr and not out.stdout


def test_every_command_has_help() -> None:
    top = _cli("--help").stdout
    for line in ("demo ", "shell ", "gui "):
        assert any(row.strip().startswith(line) and len(row.split()) > 1 for row in top.splitlines()), top
    assert "itango" in _cli("shell", "--help").stdout
    assert "Taurus" in _cli("gui", "--help").stdout


def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_log() -> None:
    s = Snapshot(xferred=30, processed=28, saved=20, nb_frames=60, rate_hz=50.0)
    term = io.StringIO()
    display = ProgressDisplay(term, tty=True)
    display.update(s)
    display.finish(Snapshot(60, 60, 60, 60, 50.0))
    assert term.getvalue().startswith("\r[" + "#" * 15 + "-" * 15 + "] 30/60 frames transferred")
    assert term.getvalue().count("\n") == 1 and "\r[" + "#" * 30 + "] 60/60" in term.getvalue()
    log = io.StringIO()
    display = ProgressDisplay(log, tty=False, period_s=3600)
    for _ in range(5):
        display.update(s)
    display.finish(Snapshot(60, 60, 60, 60, 50.0))
    lines = log.getvalue().splitlines()
    assert lines == [
        "progress: 30/60 frames transferred, 28 processed, 20 saved, 50.0 Hz",
        "progress: 60/60 frames transferred, 60 processed, 60 saved, 50.0 Hz",
    ]
    assert "\r" not in log.getvalue()
    assert "endless" in describe(Snapshot(5, 5, 5, 0))


def _read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def test_endless_demo_runs_until_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TANGO_HOST"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lima2_conductor.cli",
            "demo",
            "--nb-frames",
            "0",
            "--expo-time",
            "0.005",
            "--no-saving",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        counts: list[int] = []
        deadline = time.monotonic() + 120
        while len([c for c in counts if c > 0]) < 3:  # three progress lines with frames, counting up
            assert time.monotonic() < deadline, "".join(seen)
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if line.startswith("progress: "):
                assert "endless run" in line
                counts.append(int(line.split()[1]))
        assert counts == sorted(counts)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert "STOPPED (stopped by Ctrl+C)" in text and "All processes stopped." in text, text
    assert "Logs kept" not in text


def test_failed_demo_run_keeps_the_logs_and_says_where() -> None:
    out = _cli("demo", "--nb-frames", "40", "--expo-time", "0.005", "--no-saving", "--fail-at-frame", "5", timeout=180)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAULT" in out.stdout and "fails at frame 5" in out.stdout
    kept = [line.split("Logs kept in ", 1)[1].strip() for line in out.stdout.splitlines() if "Logs kept in " in line]
    assert len(kept) == 1, out.stdout
    logs = Path(kept[0])
    try:
        assert (logs / "simulator.log").exists() and (logs / "simulator_rcv1.log").exists()
        assert "Traceback" not in out.stderr
    finally:
        shutil.rmtree(logs, ignore_errors=True)
