"""Start and stop a whole Lima2 system on one machine: NosqlTangoDB and servers.

Used by the demo and the tests. Every process runs in its own session and is
stopped by PID (SIGTERM, then SIGKILL after a grace period); readiness is a condition
polled with a deadline, never a fixed sleep.
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

REPO_DB = Path(__file__).resolve().parent.parent / "tango_db"
CONTROL = "id00/limacontrol/simulator"
CONDUCTOR = "id00/lima2conductor/simulator"


def receiver_name(i: int) -> str:
    return f"id00/limareceiver/simulator{i + 1}"


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


def write_db(
    directory: Path,
    nb_receivers: int = 2,
    sensor: tuple[int, int] = (512, 512),
    conductor: dict[str, object] | None = None,
) -> Path:
    """Write NosqlTangoDB YAML for a control, ``nb_receivers`` receivers and a conductor."""
    directory.mkdir(parents=True, exist_ok=True)
    size = {"sensor_width": sensor[0], "sensor_height": sensor[1]}
    docs = {
        "simulator_ctl": {
            "personal_name": "simulator_ctl",
            "server": "Lima2Simulator",
            "device": [
                {
                    "class": "LimaSimulatorControl",
                    "tango_name": CONTROL,
                    "properties": {"receiver_topology": "round_robin", **size},
                }
            ],
        },
    }
    for i in range(nb_receivers):
        props = {"rank": i, "nb_receivers": nb_receivers, "control_device": CONTROL, **size}
        docs[f"simulator_rcv{i + 1}"] = {
            "personal_name": f"simulator_rcv{i + 1}",
            "server": "Lima2Simulator",
            "device": [{"class": "LimaSimulatorReceiver", "tango_name": receiver_name(i), "properties": props}],
        }
    cprops: dict[str, object] = {
        "control_device": CONTROL,
        "receiver_devices": [receiver_name(i) for i in range(nb_receivers)],
        "topology": "round_robin" if nb_receivers > 1 else "single",
        "device_timeout_ms": 3000,
        "progress_event_period_ms": 40,
    }
    cprops.update(conductor or {})
    docs["conductor"] = {
        "personal_name": "simulator",
        "server": "Lima2Conductor",
        "device": [{"class": "Lima2Conductor", "tango_name": CONDUCTOR, "properties": cprops}],
    }
    for name, doc in docs.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


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
        out = log.open("ab")
        popen = subprocess.Popen(
            args, env=self.env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        out.close()
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

    def start_server(self, module: str, instance: str, devices: list[str], timeout: float = 30.0) -> Process:
        """Start ``python -m module instance`` and wait until ``devices`` answer a ping."""
        key = instance
        if key in self.processes and self.processes[key].alive():
            raise RuntimeError(f"{key} is already running")
        proc = self._spawn(key, [sys.executable, "-m", module, instance])
        self.wait_devices(devices, timeout, proc)
        return proc

    def wait_devices(self, devices: list[str], timeout: float, proc: Process | None = None) -> None:
        code = "import sys, tango\n[tango.DeviceProxy(d).ping() for d in sys.argv[1:]]"

        def ready() -> bool:
            if proc is not None and not proc.alive():
                raise RuntimeError(f"{proc.name} exited, see {proc.log}")
            return (
                subprocess.run(
                    [sys.executable, "-c", code, *devices], env=self.env(), capture_output=True, timeout=10
                ).returncode
                == 0
            )

        wait_for(ready, timeout, f"{', '.join(devices)}", interval=0.1)

    def start_simulators(self, nb_receivers: int, timeout: float = 60.0) -> None:
        self.start_server("lima2_conductor.simulator.server", "simulator_ctl", [CONTROL], timeout)
        for i in range(nb_receivers):
            self.start_server("lima2_conductor.simulator.server", f"simulator_rcv{i + 1}", [receiver_name(i)], timeout)

    def start_conductor(self, timeout: float = 60.0) -> Process:
        return self.start_server("lima2_conductor.device.server", "simulator", [CONDUCTOR], timeout)

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()


@contextlib.contextmanager
def local_system(
    nb_receivers: int = 2,
    conductor: bool = False,
    sensor: tuple[int, int] = (512, 512),
    conductor_properties: dict[str, object] | None = None,
    workdir: Path | None = None,
) -> Iterator[LocalSystem]:
    """DB, simulators (and the conductor) running; everything stopped on exit."""
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lima2-system-"))
    system = LocalSystem(db_dir=write_db(base / "tango_db", nb_receivers, sensor, conductor_properties), log_dir=base)
    try:
        system.start_db()
        system.start_simulators(nb_receivers)
        if conductor:
            system.start_conductor()
        yield system
    finally:
        system.stop()
