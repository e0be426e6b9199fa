"""Careless clients: two and four clients issue Prepare/Start/Stop/Reset/Close at random
(:mod:`lima2_conductor.cli.stress`); a race between them is refused (``OPERATION_NOT_ALLOWED``),
never an ``INTERNAL_ERROR``, no transient run state outlives its deadline, and afterwards
the conductor and the devices agree and a clean run saves every frame.

``LIMA2_STRESS_SECONDS`` sets the time per case (default 15 s: the suite's budget; the
issue's 60 s is ``LIMA2_STRESS_SECONDS=60``); ``LIMA2_STRESS_SEED`` replays a printed seed.
"""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path

import h5py
import pytest
import tango

from lima2_conductor.cli.launcher import CONDUCTOR, CONTROL, receiver_name, wait_for
from lima2_conductor.cli.stress import device_states, run_clients
from lima2_conductor.simulator.frames import stamped_index
from tests.integration.conftest import run_to_end

SECONDS = float(os.environ.get("LIMA2_STRESS_SECONDS", "15"))
DEVICE_TIMEOUT_S = 3.0  # the conductor's device_timeout_ms default
DEADLINE_S = 2 * DEVICE_TIMEOUT_S
"""No transient run state (PREPARING, STARTING, STOPPING, ...) may last longer."""
NB_FRAMES = 20


@pytest.mark.parametrize(("nb_clients", "slow_prepare_s"), [(2, 0.15), (4, 0.0)])
def test_careless_clients(conductor: tango.DeviceProxy, data_dir: Path, nb_clients: int, slow_prepare_s: float) -> None:
    """With two clients one receiver prepares slowly: Stops and Resets then often come
    while its Prepare is on its way, and the cancelled Prepare must wait for it. In both
    cases the receivers hang now and then (their rollbacks and stops take long)."""
    seed = int(os.environ.get("LIMA2_STRESS_SEED", str(random.randrange(2**32))))
    print(f"\nLIMA2_STRESS_SEED={seed} ({nb_clients} clients, {SECONDS:.0f} s, slow Prepare {slow_prepare_s} s)")
    tango.DeviceProxy(receiver_name(1)).sim_prepare_delay = slow_prepare_s  # the fixture sets it back
    receivers = [receiver_name(0), receiver_name(1)]
    report = run_clients(CONDUCTOR, nb_clients, SECONDS, seed, DEADLINE_S, hangs=receivers)
    print(report.table())
    assert not report.unexpected, f"seed {seed}: " + "\n".join(report.unexpected[:20])
    assert not report.overdue, f"seed {seed}: " + "\n".join(report.overdue)
    assert report.counts["Prepare", "ok"], report.table()  # the load did something

    c = conductor
    tango.DeviceProxy(receiver_name(1)).sim_prepare_delay = 0.0
    c.Stop()
    wait_for(lambda: not c.running, 2 * DEADLINE_S, "the last run stopped")
    c.Reset()
    names = [CONTROL, receiver_name(0), receiver_name(1)]
    wait_for(lambda: json.loads(c.device_states) == device_states(names), 5, "conductor and devices agree")
    assert set(device_states(names).values()) == {"IDLE"} and c.run_state == "IDLE"

    saving = {"enabled": True, "base_path": str(data_dir), "nb_frames_per_file": 5}
    c.Prepare(json.dumps({"control": {"acq": {"nb_frames": NB_FRAMES}}, "processing": {"saving": saving}}))
    run_to_end(c)
    assert c.run_state == "DONE", c.Status()
    assert c.nb_frames_saved == NB_FRAMES
    master, dataset = json.loads(c.master_files)["frame"]
    with h5py.File(master) as f:
        stack = f[dataset][()]
    assert [stamped_index(frame) for frame in stack] == list(range(NB_FRAMES))


def test_prepares_stopped_on_their_way_never_overlap(conductor: tango.DeviceProxy) -> None:
    """The issue's sequence: Prepare A (one receiver slow), a hang on the other receiver,
    Stop; Prepare B, Stop; then Prepare C runs alone and the run is DONE. Each Stop
    returns once its Prepare has ended, rolled back, so B and C never meet A's calls."""
    c = conductor
    slow, other = tango.DeviceProxy(receiver_name(0)), tango.DeviceProxy(receiver_name(1))
    slow.sim_prepare_delay = 1.0
    results: dict[str, str] = {}

    def prepare(key: str) -> None:
        try:
            results[key] = tango.DeviceProxy(CONDUCTOR).Prepare("")
        except tango.DevFailed as exc:
            results[key] = exc.args[0].reason

    a = threading.Thread(target=prepare, args=("A",))
    a.start()
    wait_for(
        lambda: device_states([CONTROL, receiver_name(1)]) == {CONTROL: "PREPARED", receiver_name(1): "PREPARED"},
        5,
        "Prepare A sent, the slow receiver still preparing",
    )
    other.sim_hang = 0.5  # its next command (the rollback's Reset) blocks its whole server
    c.Stop()
    assert c.run_state == "IDLE"
    b = threading.Thread(target=prepare, args=("B",))
    b.start()  # at once, whether A's client has its answer yet or not
    a.join(10)
    wait_for(lambda: c.run_state != "IDLE", 5, "Prepare B under way")
    c.Stop()
    b.join(10)
    assert results == {"A": "OPERATION_NOT_ALLOWED", "B": "OPERATION_NOT_ALLOWED"}
    assert c.run_state == "IDLE"
    slow.sim_prepare_delay = 0.0
    uid = c.Prepare("")
    names = [CONTROL, receiver_name(0), receiver_name(1)]
    assert c.run_state == "PREPARED" and c.acq_uuid == uid
    wait_for(lambda: json.loads(c.device_states) == device_states(names), 5, "conductor and devices agree")
    assert set(device_states(names).values()) == {"PREPARED"}
    run_to_end(c)
    assert c.run_state == "DONE" and c.nb_frames_xferred == c.acq_nb_frames
