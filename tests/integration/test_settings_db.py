"""Memorized settings and the Tango database, and a clean shutdown: a system of its own,
as stopping its database would disturb every other test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import tango

from lima2_conductor.cli.launcher import Layout, LocalSystem, running_db, wait_for

LAYOUT = Layout(2, "id12", sensor=(64, 64))


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    with running_db([LAYOUT], tmp_path_factory.mktemp("settings_db")) as system:
        system.start_simulators(LAYOUT)
        yield system


def start_conductor(system: LocalSystem) -> tuple[tango.DeviceProxy, int]:
    """The conductor, ON, and where its log of this start begins."""
    log = system.log_dir / f"{LAYOUT.conductor_instance}.log"
    offset = log.stat().st_size if log.exists() else 0
    system.start_conductor(LAYOUT)
    c = tango.DeviceProxy(f"tango://{system.tango_host}/{LAYOUT.conductor}")
    wait_for(lambda: c.State() == tango.DevState.ON, 20, "conductor")
    return c, offset


def run_to_end(c: tango.DeviceProxy) -> None:
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.run_state == "DONE", 20, "end of run")


def reason(info: pytest.ExceptionInfo[tango.DevFailed]) -> str:
    return info.value.args[0].reason


def test_a_clean_shutdown_logs_no_warning(system: LocalSystem) -> None:
    """A run leaves event subscriptions to its processing devices: a stop ends them
    without a warning (Tango may have ended them first, at exit)."""
    c, offset = start_conductor(system)
    c.acq_nb_frames = 5
    run_to_end(c)
    c.Prepare("")  # a second run: the first one's subscriptions are ended as well
    run_to_end(c)
    proc = system.processes.pop(LAYOUT.conductor_instance)
    proc.stop()
    assert proc.popen.returncode == 0
    log = Path(proc.log).read_bytes()[offset:].decode(errors="replace")
    assert "delete_device done" in log
    bad = [line for line in log.splitlines() if re.search(r"\b(WARNING|WARN|ERROR|CRITICAL)\b", line)]
    assert not bad, "\n".join(bad)


def test_a_setting_written_while_the_database_is_down_is_refused(system: LocalSystem) -> None:
    """Tango memorizes a value after the device applied it: with the database down the
    value would be applied, not memorized, and lost at the next restart. It is refused:
    DEVICE_OFFLINE naming the database, the previous value kept."""
    if LAYOUT.conductor_instance not in system.processes:
        start_conductor(system)
    c = tango.DeviceProxy(f"tango://{system.tango_host}/{LAYOUT.conductor}")
    c.acq_nb_frames, c.acq_latency_time = 300, 0.001
    run_to_end(c)  # the schemas are read (and kept) while the database is there
    system.processes.pop("tango_db").stop()
    try:
        for name, value in (("acq_nb_frames", 33), ("latency_time", 0.5), ("saving_prefix", "other")):
            before = c.read_attribute(name)
            with pytest.raises(tango.DevFailed) as info:
                c.write_attribute(name, value)
            assert reason(info) == "DEVICE_OFFLINE", name
            assert system.tango_host in info.value.args[0].desc
            after = c.read_attribute(name)
            assert (after.value, after.w_value) == (before.value, before.w_value), name
        assert c.acq_latency_time == 0.001 and c.read_attribute("acq_latency_time").w_value == 0.001
    finally:
        system.start_db()

    def prepared() -> bool:
        c.Prepare("")
        return True

    wait_for(prepared, 30, "Prepare once the database is back (Tango reconnects within seconds)")
    assert c.nb_frames == 300  # the settings of before
    c.Close()
    c.acq_nb_frames = 20
    assert c.acq_nb_frames == 20
    c.latency_time = 0.002
    assert c.read_attribute("acq_latency_time").w_value == 0.002
    run_to_end(c)
    assert c.nb_frames == 20
