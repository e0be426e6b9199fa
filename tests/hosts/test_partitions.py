"""Partitions: a host cut off mid-run (its link set down), then healed.

The conductor must name what failed within 2 s of the cut, answer ``State``/``Status`` in
under 50 ms throughout, write a master file of what was saved, complete it with what a
partitioned receiver saved meanwhile once the link is back, and run again after ``Reset``
with nothing restarted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest

from lima2_conductor.cli.launcher import wait_for
from lima2_conductor.simulator.frames import stamped_index
from tests.hosts.cluster import ClientError, HostSystem
from tests.hosts.conftest import LAYOUT, HostsFactory
from tests.hosts.test_run import saving_params

FAULT_WITHIN_S = 2.0
STATE_WITHIN_MS = 50.0
NB, EXPO = 200, 0.02


@pytest.fixture(scope="module")
def hosts(make_hosts: HostsFactory) -> Iterator[HostSystem]:
    yield make_hosts()


def start_run(hosts: HostSystem, data_dir: Path, nb: int = NB, expo: float = EXPO) -> None:
    hosts.reset()
    hosts.c(f"c.Prepare({saving_params(data_dir, nb, expo)!r})")
    hosts.c("c.Start()")


def wait_frames(hosts: HostSystem, n: int) -> None:
    wait_for(lambda: hosts.c("c.nb_frames_xferred") >= n, 30, f"{n} frames transferred")


def saved_on_disk(data_dir: Path, rank: int, dataset: str) -> list[int]:
    """Global indices of the frames receiver ``rank`` saved, read from its files."""
    out: list[int] = []
    for path in sorted(data_dir.glob(f"run_{rank}_*.h5")):
        with h5py.File(path, "r", locking=False) as f:
            out += [stamped_index(frame) for frame in f[dataset][()]]
    return out


def master(hosts: HostSystem) -> tuple[str, str]:
    path, dataset = json.loads(hosts.c("c.master_files"))["frame"]
    return path, dataset


def mapped_frames(path: str) -> dict[int, tuple[str, int]]:
    """Global frame -> (file, index in it), from the master file's mapping table (read
    without touching the receivers' files, which may still be written)."""
    out: dict[int, tuple[str, int]] = {}
    with h5py.File(path, "r", locking=False) as f:
        for name, first, step, count in f["entry_0000/conductor/files"][()]:
            for k in range(int(count)):
                out[int(first) + k * max(1, int(step))] = (name.decode(), k)
    return out


def missing_frames(path: str) -> list[int]:
    with h5py.File(path, "r", locking=False) as f:
        key = "entry_0000/conductor/missing_frames"
        return f[key][()].tolist() if key in f else []


def cut_and_watch(hosts: HostSystem, host: str) -> float:
    """Cut ``host`` off; the seconds until the run is FAULT (State/Status probed meanwhile)."""
    c = hosts.client
    assert c is not None
    t_cut = time.monotonic()
    hosts.net.cut(host)
    seen = c(f"wait_value({hosts.conductor!r}, 'run_state', ['FAULT', 'DONE', 'STOPPED'], 10)", timeout=20)
    assert seen["value"] == "FAULT", seen
    return seen["at"] - t_cut


def check_state_probe(hosts: HostSystem) -> None:
    assert hosts.client is not None
    probe = hosts.prober()("probe_stop()")
    assert probe["n"] > 20 and not probe["errors"], probe
    assert probe["max_ms"] < STATE_WITHIN_MS, probe


def test_receiver_partitioned_mid_run(hosts: HostSystem, data_dir: Path) -> None:
    c = hosts.client
    assert c is not None
    rcv = LAYOUT.receiver(1)
    start_run(hosts, data_dir)
    try:
        wait_frames(hosts, 60)
        hosts.prober()(f"probe_start({hosts.conductor!r})")
        delay = cut_and_watch(hosts, "rcv2")
        assert delay < FAULT_WITHIN_S
        assert rcv in hosts.c("c.last_error"), hosts.c("c.errors")
        # the master file maps every frame the reachable receiver saved
        wait_for(lambda: "master_file_frames" in json.loads(hosts.c("c.GetInfo()"))["timings"], 20, "master file")
        path, dataset = master(hosts)
        mapped = mapped_frames(path)
        assert set(saved_on_disk(data_dir, 0, dataset)) <= set(mapped)
    finally:
        hosts.net.heal("rcv2")
    # once the link is back, the master file is completed with what the partitioned
    # receiver saved meanwhile (it never got the Stop)
    wait_for(lambda: completion(hosts).get("state") == "completed", 30, "master file completed")
    check_state_probe(hosts)
    on_disk = saved_on_disk(data_dir, 0, dataset) + saved_on_disk(data_dir, 1, dataset)
    assert len(saved_on_disk(data_dir, 1, dataset)) == NB // 2
    with h5py.File(path, "r") as f:
        stamps = [stamped_index(frame) for frame in f[dataset][()]]
    missing = missing_frames(path)
    assert set(on_disk) == set(mapped_frames(path)) == {i for i in range(len(stamps)) if i not in missing}
    assert all(stamps[i] == i for i in on_disk)
    assert missing == completion(hosts)["missing"] and len(stamps) == NB
    assert "master file completed" in hosts.conductor_log
    # the next run works after Reset, nothing restarted
    (data_dir / "next").mkdir()
    start_run(hosts, data_dir / "next", nb=20, expo=0.005)
    assert hosts.wait_run_end() == "DONE", hosts.c("c.Status()")


def completion(hosts: HostSystem) -> dict:
    done = json.loads(hosts.c("c.GetInfo()")).get("completions", [])
    return done[-1] if done else {}


def test_control_partitioned_mid_run(hosts: HostSystem, data_dir: Path) -> None:
    c = hosts.client
    assert c is not None
    start_run(hosts, data_dir)
    try:
        wait_frames(hosts, 60)
        hosts.prober()(f"probe_start({hosts.conductor!r})")
        assert cut_and_watch(hosts, "control") < FAULT_WITHIN_S
        assert LAYOUT.control in hosts.c("c.last_error"), hosts.c("c.errors")
        # the receivers were stopped; the master file maps every frame they saved
        wait_for(lambda: "master_file_frames" in json.loads(hosts.c("c.GetInfo()"))["timings"], 20, "master file")
        wait_for(lambda: not hosts.c("c.running"), 20, "run ended")
        states = json.loads(hosts.c("c.device_states"))
        assert all(states[r] != "RUNNING" for r in LAYOUT.receivers), states
        check_state_probe(hosts)
        path, dataset = master(hosts)
        on_disk = saved_on_disk(data_dir, 0, dataset) + saved_on_disk(data_dir, 1, dataset)
        assert set(on_disk) == set(mapped_frames(path))
        assert len(on_disk) < NB  # stopped: the receivers did not go on
        with h5py.File(path, "r") as f:
            stamps = [stamped_index(frame) for frame in f[dataset][()]]
        assert all(stamps[i] == i for i in on_disk)
    finally:
        hosts.net.heal("control")
    # once the link is back: Reset, and the next run works, nothing restarted
    (data_dir / "next").mkdir()
    wait_for(lambda: json.loads(hosts.c("c.device_states"))[LAYOUT.control] != "OFFLINE", 20, "control back")
    start_run(hosts, data_dir / "next", nb=20, expo=0.005)
    assert hosts.wait_run_end() == "DONE", hosts.c("c.Status()")


def test_database_partitioned(hosts: HostSystem, data_dir: Path) -> None:
    c = hosts.client
    assert c is not None
    start_run(hosts, data_dir, nb=100)
    try:
        wait_frames(hosts, 10)
        hosts.net.cut("db")
        # the running acquisition completes without the database
        assert hosts.wait_run_end() == "DONE", hosts.c("c.Status()")
        path, dataset = master(hosts)
        assert len(mapped_frames(path)) == 100
        # a Prepare needs the database: refused, naming it
        (data_dir / "refused").mkdir()
        with pytest.raises(ClientError) as refused:
            hosts.c(f"c.Prepare({saving_params(data_dir / 'refused', 10, 0.005)!r})")
        assert refused.value.reason == "DEVICE_OFFLINE", refused.value
        assert hosts.tango_host in refused.value.desc
    finally:
        hosts.net.heal("db")
    # once the link is back, Prepare works (nothing restarted)
    (data_dir / "next").mkdir()

    def prepared() -> bool:
        try:
            hosts.c(f"c.Prepare({saving_params(data_dir / 'next', 10, 0.005)!r})")
        except ClientError as exc:
            if exc.reason != "DEVICE_OFFLINE":
                raise
            return False
        return True

    wait_for(prepared, 30, "Prepare after the database is back")
    hosts.c("c.Start()")
    assert hosts.wait_run_end() == "DONE", hosts.c("c.Status()")


def flap(hosts: HostSystem, host: str, down_s: float, up_s: float, times: int) -> None:
    """The link of ``host`` down for ``down_s``, then up for ``up_s``, ``times`` times
    (a bad cable: the timing is the scenario itself)."""
    for _ in range(times):
        hosts.net.cut(host)
        try:
            time.sleep(down_s)
        finally:
            hosts.net.heal(host)
        time.sleep(up_s)


def test_flapping_link_never_leaves_a_run_stuck(hosts: HostSystem, data_dir: Path) -> None:
    start_run(hosts, data_dir, nb=300)
    wait_frames(hosts, 20)
    flap(hosts, "rcv2", 1.0, 0.5, 3)
    # the run completes, or fails with a reason; never stuck
    state = hosts.wait_run_end(timeout=60)
    assert state in ("DONE", "FAULT"), state
    if state == "FAULT":
        assert hosts.c("c.last_error"), hosts.c("c.Status()")
    wait_for(lambda: not hosts.c("c.running"), 30, "run over")
    # and the system works again after Reset
    (data_dir / "next").mkdir()
    wait_for(lambda: "OFFLINE" not in json.loads(hosts.c("c.device_states")).values(), 30, "devices back")
    start_run(hosts, data_dir / "next", nb=20, expo=0.005)
    assert hosts.wait_run_end() == "DONE", hosts.c("c.Status()")
