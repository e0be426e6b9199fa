"""Starter starts and stops the simulators and the conductor, by startup level, from the
executables in ``StartDsPath``; a conductor killed is started again and adopts its run."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import tango

from lima2_conductor.cli.launcher import Layout, wait_for, write_db

from .tango_services import HOST, SKIP, SKIP_REASON, RealTangoSystem, kill_pid, spawn, venv_bin

pytestmark = pytest.mark.skipif(SKIP, reason=SKIP_REASON)

LAYOUT = Layout(2, "id77")  # instance names no other test on this host uses: Starter finds servers by name
STARTER = f"tango/admin/{HOST}"
SIMULATORS = [f"Lima2Simulator/{LAYOUT.control_instance}"] + [
    f"Lima2Simulator/{LAYOUT.receiver_instance(i)}" for i in range(LAYOUT.nb_receivers)
]
CONDUCTOR_SERVER = f"Lima2Conductor/{LAYOUT.conductor_instance}"
LEVELS = {**dict.fromkeys(SIMULATORS, 1), CONDUCTOR_SERVER: 2}


def running(starter: tango.DeviceProxy) -> set[str]:
    return set(starter.RunningServers or ())


def stopped(starter: tango.DeviceProxy) -> set[str]:
    """Servers Starter knows to be stopped (not merely "running but not responding",
    as a server that is still exiting is)."""
    return set(starter.StoppedServers or ())


@pytest.fixture(scope="module")
def starter(services: RealTangoSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tango.DeviceProxy]:
    """The layout registered, Starter/<host> registered and running (the servers' startup
    levels set); every server it started is stopped by PID at the end."""
    services.register(str(write_db(tmp_path_factory.mktemp("yaml"), [LAYOUT])))
    db = services.database()
    info = tango.DbDevInfo()
    info.name, info._class, info.server = STARTER, "Starter", f"Starter/{HOST}"
    db.add_device(info)
    logs = services.log_dir / "starter-logs"
    logs.mkdir(exist_ok=True)
    db.put_device_property(
        STARTER,
        {
            "StartDsPath": [
                str(venv_bin())
            ],  # Lima2Simulator, Lima2Conductor: readable and executable by Starter's user
            "LogFileHome": [str(logs)],
            "StartServersAtStartup": ["false"],
            "InterStartupLevelWait": ["0"],
            "ServerStartupTimeout": ["120"],  # python servers on a busy machine: seconds, not one
        },
    )
    for server, level in LEVELS.items():
        si = tango.DbServerInfo()
        si.name, si.host, si.mode, si.level = server, HOST, 1, level
        db.put_server_info(si)
    proc = spawn(services, "starter", [str(Path("/usr/lib/tango/Starter")), HOST])
    s = services.proxy(STARTER)
    try:
        wait_for(lambda: s.State() is not None, 30, "Starter")
        yield s
    finally:
        for level in (2, 1):
            with contextlib.suppress(tango.DevFailed):
                s.DevStopAll(level)
        for server in [CONDUCTOR_SERVER, *SIMULATORS]:
            try:
                pid = services.server_pid(server)
            except tango.DevFailed:
                pid = 0
            if pid:
                kill_pid(pid, server.split("/")[1])
        proc.stop()
        services.processes.pop("starter", None)


def wait_running(services: RealTangoSystem, starter: tango.DeviceProxy, servers: list[str]) -> None:
    wait_for(lambda: set(servers) <= running(starter), 120, f"{', '.join(servers)} started by Starter", 0.2)
    devices = {f"Lima2Conductor/{LAYOUT.conductor_instance}": LAYOUT.conductor}
    devices.update(zip(SIMULATORS, [LAYOUT.control, *LAYOUT.receivers], strict=True))
    for server in servers:
        d = services.proxy(devices[server])
        wait_for(lambda d=d: d.State() not in (tango.DevState.INIT, None), 60, f"{d.dev_name()} answering", 0.2)


def stop_level(services: RealTangoSystem, starter: tango.DeviceProxy, level: int) -> None:
    """DevStopAll(level), then wait until those processes are gone: until then Starter
    takes them for running and a DevStartAll would skip them."""
    servers = [k for k, v in LEVELS.items() if v == level]
    pids = [services.server_pid(k) for k in servers]
    starter.DevStopAll(level)
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in pids if p), 60, f"level {level} stopped", 0.2)
    wait_for(lambda: set(servers) <= stopped(starter), 60, f"Starter sees level {level} stopped", 0.2)


def start_level(starter: tango.DeviceProxy, level: int) -> None:
    """DevStartAll(level) until every server of that level runs: Starter skips ("Already
    running") a server whose process its own process scan has not yet seen exit."""
    servers = {k for k, v in LEVELS.items() if v == level}

    def started() -> bool:
        if servers <= running(starter):
            return True
        if not servers & moving(starter):
            starter.DevStartAll(level)
        return False

    wait_for(started, 120, f"level {level} started by Starter", 1.0)


def moving(starter: tango.DeviceProxy) -> set[str]:
    """Servers Starter is starting (state MOVING)."""
    return {line.split("\t")[0] for line in starter.Servers or () if line.split("\t")[1] == "MOVING"}


def dev_start(starter: tango.DeviceProxy, server: str) -> bool:
    """DevStart, False while Starter still thinks the server runs (it polls the processes)."""
    try:
        starter.DevStart(server)
    except tango.DevFailed as exc:
        if exc.args[0].reason == "ALREADY_RUNNING":
            return False
        raise
    return True


def run(c: tango.DeviceProxy, nb: int, expo: float = 0.002) -> None:
    c.acq_nb_frames = nb
    c.acq_expo_time = expo
    c.Prepare("")
    c.Start()


def test_starter_starts_by_level_runs_and_stops(services: RealTangoSystem, starter: tango.DeviceProxy) -> None:
    s = starter
    # a server never run has no host in the database yet: the first start is by name
    for server in SIMULATORS:
        s.DevStart(server)
    wait_running(services, s, SIMULATORS)
    s.DevStart(CONDUCTOR_SERVER)
    wait_running(services, s, [CONDUCTOR_SERVER])
    levels = {line.split("\t")[0]: int(line.split("\t")[3]) for line in s.Servers}
    assert {k: levels[k] for k in LEVELS} == LEVELS

    c = services.proxy(LAYOUT.conductor)
    c.Reset()
    run(c, 40)
    wait_for(lambda: c.run_state in ("DONE", "FAULT"), 60, "end of run")
    assert c.run_state == "DONE", c.Status()

    stop_level(services, s, 2)
    assert set(SIMULATORS) <= running(s)
    stop_level(services, s, 1)

    # now known on this host: startup levels start them
    start_level(s, 1)
    wait_running(services, s, SIMULATORS)
    assert CONDUCTOR_SERVER not in running(s)
    start_level(s, 2)
    wait_running(services, s, [CONDUCTOR_SERVER])


def test_killed_conductor_restarted_by_starter_adopts_its_run(
    services: RealTangoSystem, starter: tango.DeviceProxy
) -> None:
    s = starter
    start_level(s, 1)
    start_level(s, 2)
    wait_running(services, s, [*SIMULATORS, CONDUCTOR_SERVER])
    c = services.proxy(LAYOUT.conductor)
    c.Stop()
    wait_for(lambda: not c.running, 20, "nothing running")
    c.Reset()
    run(c, 0, 0.005)  # endless: still running whatever the time Starter takes
    wait_for(lambda: c.nb_frames_xferred > 20, 30, "frames flowing")
    uuid = c.acq_uuid
    kill_pid(services.server_pid(CONDUCTOR_SERVER), LAYOUT.conductor_instance)
    wait_for(lambda: CONDUCTOR_SERVER in stopped(s), 60, "Starter sees the conductor gone", 0.2)
    wait_for(lambda: dev_start(s, CONDUCTOR_SERVER), 60, "Starter accepting DevStart", 0.5)
    wait_running(services, s, [CONDUCTOR_SERVER])
    c = services.proxy(LAYOUT.conductor)
    wait_for(lambda: json.loads(c.GetInfo())["adopted"], 30, "run adopted", 0.2)
    assert c.acq_uuid == uuid and c.run_state == "RUNNING"
    seen = c.nb_frames_xferred
    wait_for(lambda: c.nb_frames_xferred > seen, 30, "the adopted run's frames counted")
    c.Stop()
    wait_for(lambda: c.run_state in ("STOPPED", "FAULT"), 30, "end of the adopted run")
    assert c.run_state == "STOPPED", c.Status()
