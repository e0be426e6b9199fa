"""Refused large requests leave no lasting memory in the conductor."""

from __future__ import annotations

import time

import pytest
import tango

from lima2_conductor.cli.launcher import Layout, LocalSystem
from tests.integration.conftest import reason

BIG = "x" * (20 * 1024 * 1024)
SLACK_MB = 50


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_refused_20_mb_prepares_leave_no_lasting_memory(system: LocalSystem, conductor: tango.DeviceProxy) -> None:
    pid = system.processes[Layout(2, "id00").conductor_instance].pid
    conductor.set_timeout_millis(30_000)
    before = rss_mb(pid)
    for _ in range(25):
        with pytest.raises(tango.DevFailed) as info:
            conductor.Prepare(BIG)
        assert reason(info) == "PARAM_ERROR"
    peak = rss_mb(pid)
    deadline = time.monotonic() + 20
    while (now := rss_mb(pid)) > before + SLACK_MB:
        assert time.monotonic() < deadline, f"RSS {before:.0f} MB before, {peak:.0f} MB after, still {now:.0f} MB"
        time.sleep(0.1)
    assert conductor.State() in (tango.DevState.ON, tango.DevState.STANDBY)
