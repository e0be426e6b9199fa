"""Start and stop a whole Lima2 system on one machine: NosqlTangoDB and servers.

Used by the demo, the tests and the benchmarks. Every process runs in its own session
and is stopped by PID (SIGTERM, then SIGKILL after a grace period); readiness is a
condition polled with a deadline, never a fixed sleep.

A Tango client process reads ``TANGO_HOST`` once: one process talks to one database.
Several systems can share it, each in its own Tango domain (:class:`Layout`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SIMULATOR_MODULE = "lima2_conductor.simulator.server"
CONDUCTOR_MODULE = "lima2_conductor.device.server"
CONTROL = "id00/limacontrol/simulator"
CONDUCTOR = "id00/lima2conductor/simulator"


def receiver_name(i: int) -> str:
    """Receiver ``i`` (0-based) of the default system."""
    return f"id00/limareceiver/simulator{i + 1}"


@dataclass(frozen=True)
class Layout:
    """Names of one system: a control, ``nb_receivers`` receivers and a conductor.

    Domain ``id00`` uses the names of ``tango_db/`` (instances ``simulator_ctl``,
    ``simulator_rcvN``, conductor ``simulator``); other domains prefix the instances.
    """

    nb_receivers: int = 2
    domain: str = "id00"
    sensor: tuple[int, int] = (512, 512)
    topology: str = ""  # default: single for 1 receiver, else round_robin

    @property
    def prefix(self) -> str:
        return "simulator" if self.domain == "id00" else self.domain

    @property
    def control(self) -> str:
        return f"{self.domain}/limacontrol/simulator"

    def receiver(self, i: int) -> str:
        return f"{self.domain}/limareceiver/simulator{i + 1}"

    @property
    def receivers(self) -> list[str]:
        return [self.receiver(i) for i in range(self.nb_receivers)]

    @property
    def conductor(self) -> str:
        return f"{self.domain}/lima2conductor/simulator"

    @property
    def control_instance(self) -> str:
        return f"{self.prefix}_ctl"

    def receiver_instance(self, i: int) -> str:
        return f"{self.prefix}_rcv{i + 1}"

    @property
    def conductor_instance(self) -> str:
        return self.prefix

    def yaml_docs(self, conductor: dict[str, object] | None = None) -> dict[str, dict[str, object]]:
        size = {"sensor_width": self.sensor[0], "sensor_height": self.sensor[1]}
        docs: dict[str, dict[str, object]] = {
            self.control_instance: _server(
                self.control_instance,
                "Lima2Simulator",
                "LimaSimulatorControl",
                self.control,
                {"receiver_topology": "round_robin", **size},
            ),
        }
        for i in range(self.nb_receivers):
            props = {"rank": i, "nb_receivers": self.nb_receivers, "control_device": self.control, **size}
            docs[self.receiver_instance(i)] = _server(
                self.receiver_instance(i), "Lima2Simulator", "LimaSimulatorReceiver", self.receiver(i), props
            )
        cprops: dict[str, object] = {
            "control_device": self.control,
            "receiver_devices": self.receivers,
            "topology": self.topology or ("round_robin" if self.nb_receivers > 1 else "single"),
            "device_timeout_ms": 3000,
            "progress_event_period_ms": 40,
        }
        cprops.update(conductor or {})
        docs[f"{self.prefix}_conductor"] = _server(
            self.conductor_instance, "Lima2Conductor", "Lima2Conductor", self.conductor, cprops
        )
        return docs


def _server(instance: str, server: str, cls: str, name: str, props: dict[str, object]) -> dict[str, object]:
    return {
        "personal_name": instance,
        "server": server,
        "device": [{"class": cls, "tango_name": name, "properties": props}],
    }


def write_db(directory: Path, layouts: list[Layout], conductor: dict[str, object] | None = None) -> Path:
    """Write NosqlTangoDB YAML (one file per server instance) for ``layouts``."""
    directory.mkdir(parents=True, exist_ok=True)
    for layout in layouts:
        for name, doc in layout.yaml_docs(conductor).items():
            (directory / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition`` until true; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(interval)


@dataclass
class Process:
    """A child process in its own session, stopped by PID."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, grace: float = 5.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(grace)


@dataclass
class LocalSystem:
    """NosqlTangoDB on a free port plus device servers, all children of this process."""

    db_dir: Path
    log_dir: Path
    port: int = field(default_factory=free_port)
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def tango_host(self) -> str:
        return f"localhost:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TANGO_HOST"] = self.tango_host
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(self, key: str, args: list[str]) -> Process:
        log = self.log_dir / f"{key}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Process(key, popen, log)
        self.processes[key] = proc
        return proc

    def start_db(self, timeout: float = 30.0) -> None:
        exe = shutil.which("NosqlTangoDB") or str(Path(sys.executable).parent / "NosqlTangoDB")
        proc = self._spawn("tango_db", [exe, f"--port={self.port}", f"--db_access=yaml:{self.db_dir}", "2"])

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"NosqlTangoDB exited, see {proc.log}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True

        wait_for(ready, timeout, "NosqlTangoDB")

    def start_server(self, module: str, instance: str, devices: list[str], timeout: float = 120.0) -> Process:
        """Start ``python -m module instance`` and wait until ``devices`` answer a ping."""
        if instance in self.processes and self.processes[instance].alive():
            raise RuntimeError(f"{instance} is already running")
        log = self.log_dir / f"{instance}.log"
        offset = log.stat().st_size if log.exists() else 0  # a restarted server appends to its log
        proc = self._spawn(instance, [sys.executable, "-m", module, instance])
        self.wait_devices(devices, timeout, proc, log_offset=offset)
        return proc

    def wait_devices(
        self, devices: list[str], timeout: float, proc: Process | None = None, log_offset: int | None = None
    ) -> None:
        """Wait until every device answers a ping (checked from a child process, so that
        this process's Tango client is not bound to a database too early). With the
        server's log offset, ping only once the server printed that it is ready: each ping
        is a new Python process, and pinging in a loop slows a server starting on a busy
        machine until it misses its deadline."""
        code = "import sys, tango\n[tango.DeviceProxy(d).ping() for d in sys.argv[1:]]"

        def ready() -> bool:
            if proc is not None and not proc.alive():
                raise RuntimeError(f"{proc.name} exited, see {proc.log}")
            if proc is not None and log_offset is not None:
                with proc.log.open("rb") as f:
                    f.seek(log_offset)
                    if b"Ready to accept request" not in f.read():
                        return False
            return (
                subprocess.run(
                    [sys.executable, "-c", code, *devices], env=self.env(), capture_output=True, timeout=10
                ).returncode
                == 0
            )

        wait_for(ready, timeout, f"{', '.join(devices)}", interval=0.1)

    def start_simulators(self, layout: Layout, timeout: float = 120.0) -> None:
        self.start_server(SIMULATOR_MODULE, layout.control_instance, [layout.control], timeout)
        for i in range(layout.nb_receivers):
            self.start_server(SIMULATOR_MODULE, layout.receiver_instance(i), [layout.receiver(i)], timeout)

    def start_conductor(self, layout: Layout, timeout: float = 120.0) -> Process:
        return self.start_server(CONDUCTOR_MODULE, layout.conductor_instance, [layout.conductor], timeout)

    def stop_layout(self, layout: Layout) -> None:
        """Stop the conductor and simulators of ``layout`` (the database keeps running)."""
        names = [
            layout.conductor_instance,
            *(layout.receiver_instance(i) for i in range(layout.nb_receivers)),
            layout.control_instance,
        ]
        for name in names:
            if name in self.processes:
                self.processes.pop(name).stop()

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()


@contextlib.contextmanager
def running_db(
    layouts: list[Layout], workdir: Path | None = None, conductor_properties: dict[str, object] | None = None
) -> Iterator[LocalSystem]:
    """NosqlTangoDB with ``layouts`` registered (no server started); stopped on exit."""
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lima2-system-"))
    base.mkdir(parents=True, exist_ok=True)
    system = LocalSystem(db_dir=write_db(base / "tango_db", layouts, conductor_properties), log_dir=base)
    try:
        system.start_db()
        yield system
    finally:
        system.stop()


@contextlib.contextmanager
def local_system(
    nb_receivers: int = 2,
    conductor: bool = False,
    sensor: tuple[int, int] = (512, 512),
    conductor_properties: dict[str, object] | None = None,
    workdir: Path | None = None,
) -> Iterator[LocalSystem]:
    """DB, simulators (and the conductor) of the default ``id00`` system; all stopped on exit."""
    layout = Layout(nb_receivers, "id00", sensor)
    with running_db([layout], workdir, conductor_properties) as system:
        system.start_simulators(layout)
        if conductor:
            system.start_conductor(layout)
        yield system
