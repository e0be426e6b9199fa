"""Fixtures of the integration tests: the default system with its conductor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tango

from lima2_conductor.cli.launcher import CONDUCTOR, CONTROL, LocalSystem, receiver_name, wait_for


@pytest.fixture(scope="module")
def system(system2c: LocalSystem) -> Iterator[LocalSystem]:
    yield system2c


@pytest.fixture
def conductor(system: LocalSystem) -> tango.DeviceProxy:
    c = tango.DeviceProxy(CONDUCTOR)
    wait_for(lambda: c.State() != tango.DevState.INIT, 20, "conductor answering")
    c.Stop()  # whatever a previous test left running
    wait_for(lambda: not c.running, 20, "nothing running")
    for name in (CONTROL, receiver_name(0), receiver_name(1)):
        d = tango.DeviceProxy(name)
        d.sim_fail_prepare = False
        d.sim_fail_start = False
        d.sim_prepare_delay = 0.0
        d.sim_fail_at_frame = -1
        if name != CONTROL:
            d.sim_drop_finished_event = False
    c.Stop()
    c.Reset()
    c.acq_nb_frames = 10
    c.acq_expo_time = 0.001
    c.acq_latency_time = 0.0
    c.acq_trigger_mode = 0  # internal
    c.saving_enabled = False
    return c


def reason(info: pytest.ExceptionInfo[tango.DevFailed]) -> str:
    return info.value.args[0].reason


def run_to_end(c: tango.DeviceProxy, timeout: float = 20) -> None:
    c.Start()
    wait_for(lambda: not c.running, timeout, "end of run")
