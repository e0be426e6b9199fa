"""The same conductor with 1 and 4 receivers: only the Tango DB properties change."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import tango

from lima2_conductor.cli.launcher import Layout, LocalSystem, wait_for
from tests.conftest import FOUR, SINGLE, start


@pytest.fixture(scope="module", params=[SINGLE, FOUR], ids=["1-receiver", "4-receivers"])
def layout(request: pytest.FixtureRequest, tango_db: LocalSystem) -> Iterator[Layout]:
    for _ in start(tango_db, request.param, conductor=True):
        yield request.param


def test_acquisition_with_n_receivers(layout: Layout) -> None:
    c = tango.DeviceProxy(layout.conductor)
    wait_for(lambda: c.State() == tango.DevState.ON, 10, "conductor ON")
    assert c.topology_name == ("single" if layout.nb_receivers == 1 else "round_robin")
    c.acq_nb_frames = 120
    c.acq_expo_time = 0.002
    c.Prepare("")
    assert c.State() == tango.DevState.STANDBY
    c.Start()
    wait_for(lambda: c.run_state in ("DONE", "FAULT"), 20, "end of run")
    assert c.run_state == "DONE"
    assert c.nb_frames_xferred == 120 and c.nb_frames_ready == 120
    per = json.loads(c.progress_counters)["nb_frames_xferred"]["per_receiver"]
    assert per == {name: 120 // layout.nb_receivers for name in layout.receivers}
