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

from lima2_conductor.cli.acquire import run_acquisition
from lima2_conductor.cli.launcher import CONDUCTOR, LocalSystem
from lima2_conductor.cli.progress_display import ProgressDisplay, Snapshot, describe
from lima2_conductor.cli.shell import namespaces
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


def _register(tango_host: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TANGO_HOST"}
    return subprocess.run(
        [sys.executable, "-m", "lima2_conductor.cli", "register", "--tango-host", tango_host, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _db(system: LocalSystem) -> tango.Database:
    """The session's database: this process's TANGO_HOST (its port accepts connections a
    little before the database device answers)."""
    from lima2_conductor.cli.launcher import wait_for

    assert os.environ["TANGO_HOST"] == system.tango_host
    dbs: list[tango.Database] = []
    wait_for(lambda: bool(dbs.append(tango.Database()) or True), 30, "the Tango database")
    return dbs[-1]


def test_register_dry_run_then_idempotent(tango_db: LocalSystem, tmp_path: Path) -> None:
    from lima2_conductor.cli.launcher import Layout, write_db
    from lima2_conductor.cli.registration import CONDUCTOR_READ_ONLY_COMMANDS

    layout = Layout(1, "id09")
    yaml_dir = write_db(tmp_path / "yaml", [layout])
    db = _db(tango_db)
    dry = _register(tango_db.tango_host, "--dry-run", str(yaml_dir))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"[write] device Lima2Simulator/{layout.control_instance} {layout.control}" in dry.stdout
    assert "nothing written" in dry.stdout
    assert list(db.get_device_class_list(f"Lima2Simulator/{layout.control_instance}")) == []

    first = _register(tango_db.tango_host, str(yaml_dir))
    assert first.returncode == 0, first.stdout + first.stderr
    assert list(db.get_device_class_list(f"Lima2Conductor/{layout.conductor_instance}")) == [
        layout.conductor,
        "Lima2Conductor",
    ]
    props = db.get_device_property(layout.receiver(0), ["control_device", "rank", "nb_receivers"])
    assert list(props["control_device"]) == [layout.control] and list(props["nb_receivers"]) == ["1"]
    assert list(db.get_device_property(layout.conductor, ["receiver_devices"])["receiver_devices"]) == layout.receivers
    allowed = list(db.get_class_property("Lima2Conductor", ["AllowedAccessCmd"])["AllowedAccessCmd"])
    assert set(CONDUCTOR_READ_ONLY_COMMANDS) <= set(allowed)
    assert "getFrame" in db.get_class_property("LimaProcessingLegacy", ["AllowedAccessCmd"])["AllowedAccessCmd"]

    second = _register(tango_db.tango_host, str(yaml_dir))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "[write]" not in second.stdout and second.stdout.splitlines()[-1].startswith("0 write(s)")


def test_register_only_conductor_keeps_site_commands(tango_db: LocalSystem) -> None:
    db = _db(tango_db)
    db.put_class_property("LimaProcessingFai", {"AllowedAccessCmd": ["siteCommand"]})
    out = _register(
        tango_db.tango_host,
        "--only-conductor",
        "--control",
        "id08/limacontrol/real",
        "--receivers",
        "id08/limareceiver/real1",
        "--device",
        "id08/lima2conductor/real",
        "--instance",
        "real08",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Lima2Simulator" not in out.stdout  # the simulators are not registered
    assert list(db.get_device_class_list("Lima2Conductor/real08")) == ["id08/lima2conductor/real", "Lima2Conductor"]
    props = db.get_device_property("id08/lima2conductor/real", ["control_device", "receiver_devices", "topology"])
    assert list(props["control_device"]) == ["id08/limacontrol/real"]
    assert list(props["receiver_devices"]) == ["id08/limareceiver/real1"]
    assert list(props["topology"]) == ["single"]
    allowed = list(db.get_class_property("LimaProcessingFai", ["AllowedAccessCmd"])["AllowedAccessCmd"])
    assert "siteCommand" in allowed and "getFaiAverint" in allowed
    refused = _register(tango_db.tango_host, "--control", "a/b/c")
    assert refused.returncode == 2 and "--only-conductor" in refused.stderr


def test_allowed_access_cmd_lists_exactly_the_commands_that_change_nothing() -> None:
    """Every command of the served classes is either listed as a read or known to act."""
    from lima2_conductor.cli.registration import read_only_commands
    from lima2_conductor.device.conductor import Lima2Conductor
    from lima2_conductor.simulator.processing import DEVICE_CLASSES

    acting = {"Prepare", "Start", "Trigger", "Stop", "Close", "Reset"}
    allowed = read_only_commands()
    assert set(Lima2Conductor.TangoClassClass.cmd_list) == acting | set(allowed["Lima2Conductor"])
    for name, cls in DEVICE_CLASSES.items():
        commands = set(cls.TangoClassClass.cmd_list)
        reads = set(allowed.get(name, ()))
        assert reads <= commands
        assert {c for c in commands - reads if not c.startswith("pop")} == set(), name
