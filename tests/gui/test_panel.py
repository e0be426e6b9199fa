"""The Taurus panel, offscreen, against a running conductor: live values during a run,
its buttons, and a PNG of the window."""

from __future__ import annotations

import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tango

from lima2_conductor.cli.launcher import CONDUCTOR, LocalSystem, wait_for

RUN_COUNTERS = ("nb_frames_acquired", "nb_frames_xferred", "nb_frames_processed")
DRIVER = Path(__file__).with_name("panel_driver.py")
NB_FRAMES = 200  # 10 s at 20 Hz: time to watch it, and last_image refreshes often


class Panel:
    """The panel driver in a subprocess, asked one command at a time."""

    def __init__(self, device: str, log: Path) -> None:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER), device],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self._answers: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._next(60) == {"ready": True}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(line)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            return dict(json.loads(self._answers.get(timeout=timeout)))
        except queue.Empty:
            raise AssertionError(f"the panel did not answer in {timeout} s") from None

    def ask(self, command: str, timeout: float = 30) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._next(timeout)

    def wait_shows(self, condition: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        shown: list[dict[str, Any]] = []

        def check() -> bool:
            shown.append(self.ask("show"))
            return condition(shown[-1])

        try:
            wait_for(check, timeout, what, interval=0.05)
        except TimeoutError:
            seen = "\n".join(json.dumps(x) for x in shown[-40::4])
            raise AssertionError(f"{what}: the panel showed\n{seen}") from None
        return shown[-1]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("quit", timeout=10)
                self.proc.wait(10)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def panel(system2c: LocalSystem, tmp_path: Path) -> Iterator[Panel]:
    p = Panel(CONDUCTOR, tmp_path / "panel.log")
    try:
        yield p
    finally:
        p.close()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_panel_shows_a_live_run(panel: Panel, tmp_path: Path) -> None:
    c = tango.DeviceProxy(CONDUCTOR)
    c.Stop()
    c.Reset()
    c.acq_nb_frames = NB_FRAMES
    c.acq_expo_time = 0.05
    c.acq_latency_time = 0.0
    c.saving_enabled = False  # the live image during a saving run is a separate matter of the device
    idle = panel.wait_shows(
        lambda s: s["state"] == "ON" and len(s["devices"]) == 3 and s["counters"]["nb_frames_xferred"][1] > 0,
        30,
        "the panel shows the idle system",
    )
    assert set(idle["devices"]) == {"id00/limacontrol/simulator", *(f"id00/limareceiver/simulator{i}" for i in (1, 2))}

    # the panel's buttons drive the conductor
    assert panel.ask("click Prepare") == {"clicked": "Prepare"}
    wait_for(lambda: c.run_state == "PREPARED", 30, "Prepare from the panel")
    assert panel.ask("click Start") == {"clicked": "Start"}

    def mid_run(s: dict[str, Any]) -> bool:
        counts = [s["counters"][n][0] for n in RUN_COUNTERS]
        return (
            s["state"] == "RUNNING"
            and all(0 < n < NB_FRAMES for n in counts)
            and s["counters"]["nb_frames_xferred"][1] == NB_FRAMES
            and s["image"]["updates"] > 0
            and s["image"]["shape"] == [512, 512]
            and "RUNNING" in s["devices"].values()
        )

    first = panel.wait_shows(mid_run, 60, "live progress and an image during the run")
    png = tmp_path / "panel.png"
    assert panel.ask(f"grab {png}") == {"saved": True}
    later = panel.wait_shows(
        lambda s: (
            s["counters"]["nb_frames_xferred"][0] > first["counters"]["nb_frames_xferred"][0]
            and s["image"]["updates"] > first["image"]["updates"]
        ),
        60,
        "values changing during the run",
    )
    assert later["counters"]["nb_frames_processed"][0] >= first["counters"]["nb_frames_processed"][0]
    done = panel.wait_shows(
        lambda s: (
            s["run_state"] == "DONE"
            and all(s["counters"][n] == [NB_FRAMES, NB_FRAMES] for n in RUN_COUNTERS)
            and s["counters"]["nb_frames_saved"] == [0, NB_FRAMES]
            and s["image"]["frame"] >= 0
            and s["state"] == "ON"
        ),
        60,
        "the end of the run",
    )
    assert done["image"]["levels"][1] > done["image"]["levels"][0]
    width, height = _png_size(png)
    assert width >= 800 and height >= 600
    if os.environ.get("LIMA2_PANEL_SCREENSHOT"):
        shutil.copy(png, os.environ["LIMA2_PANEL_SCREENSHOT"])
