"""A Lima2 system spread over simulated hosts, and a Tango client on a host of its own.

Hosts: ``db`` (NosqlTangoDB), ``control``, ``rcv1``.. (one receiver each), ``conductor``
and ``client`` (the tests' Tango client, :class:`Client`). Every server publishes its
host's 198.18 address (``ORBendPoint``); the files go to one directory that every host
sees, as a beamline's shared disk.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lima2_conductor.cli.launcher import CONDUCTOR_MODULE, SIMULATOR_MODULE, Layout, Process, wait_for, write_db
from tests.hosts.netns import DB_PORT, Network, python, wait_ready

DRIVER = str(Path(__file__).with_name("driver.py"))
RECEIVER_PORT = 20000
CONDUCTOR_PROPERTIES: dict[str, object] = {"device_timeout_ms": 3000, "progress_event_period_ms": 40}


class ClientError(Exception):
    """A request of the client failed; ``reason`` is the Tango reason (if a ``DevFailed``)."""

    def __init__(self, kind: str, reason: str, desc: str) -> None:
        super().__init__(f"{kind} {reason}: {desc}")
        self.kind, self.reason, self.desc = kind, reason, desc


class Client:
    """The driver process (:mod:`tests.hosts.driver`) on the client host."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.lines: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._reply(60.0)  # "ready"

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def _reply(self, timeout: float) -> Any:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the client driver did not answer within {timeout:.0f} s") from None
        if not line:
            raise RuntimeError("the client driver exited")
        reply = json.loads(line)
        if "error" in reply:
            e = reply["error"]
            raise ClientError(e["type"], e["reason"], e["desc"])
        return reply["ok"]

    def _send(self, code: str, is_eval: bool, timeout: float) -> Any:
        assert self.popen.stdin is not None
        self.popen.stdin.write((json.dumps({"code": code, "eval": is_eval}) + "\n").encode())
        self.popen.stdin.flush()
        return self._reply(timeout)

    def __call__(self, code: str, timeout: float = 30.0) -> Any:
        """The value of the expression ``code`` evaluated on the client host."""
        return self._send(code, True, timeout)

    def run(self, code: str, timeout: float = 30.0) -> None:
        """Execute the statements ``code`` on the client host."""
        self._send(code, False, timeout)


@dataclass
class HostSystem:
    """The hosts, their servers and the client."""

    net: Network
    layout: Layout
    data: Path
    multi_homed: str = ""  # receiver host whose first published address is unreachable
    conductor_properties: dict[str, object] = field(default_factory=dict)
    client: Client | None = None
    placement: dict[str, str] = field(default_factory=dict)
    """Role (``db``, ``control``, ``rcv1``.., ``conductor``, ``client``) -> host name;
    default: each role on a host of its own, named after it."""

    _prober: Client | None = None

    def host(self, role: str) -> str:
        return self.placement.get(role, role)

    @property
    def tango_host(self) -> str:
        return f"{self.net.hosts[self.host('db')].addr}:{DB_PORT}"

    @property
    def conductor(self) -> str:
        return self.layout.conductor

    def receiver_host(self, i: int) -> str:
        return self.host(f"rcv{i + 1}")

    def host_names(self) -> list[str]:
        roles = ["db", "control", *(f"rcv{i + 1}" for i in range(self.layout.nb_receivers)), "conductor", "client"]
        return list(dict.fromkeys(self.host(role) for role in roles))

    def servers(self) -> dict[str, tuple[str, list[str]]]:
        """Process key -> (host, argv) of every device server."""
        lay = self.layout
        out = {lay.control_instance: (self.host("control"), python(SIMULATOR_MODULE, lay.control_instance))}
        for i in range(lay.nb_receivers):
            out[lay.receiver_instance(i)] = (self.receiver_host(i), python(SIMULATOR_MODULE, lay.receiver_instance(i)))
        out[lay.conductor_instance] = (self.host("conductor"), python(CONDUCTOR_MODULE, lay.conductor_instance))
        return out

    def start(self) -> None:
        net = self.net
        net.build(self.host_names())
        self.data.mkdir(parents=True, exist_ok=True)
        props = {**CONDUCTOR_PROPERTIES, **self.conductor_properties}
        db_dir = write_db(net.workdir / "tango_db", [self.layout], props)
        db = net.hosts[self.host("db")]
        exe = str(Path(python("x")[0]).parent / "NosqlTangoDB")
        net.spawn(
            db.name,
            "tango_db",
            [exe, f"--host={db.addr}", f"--port={DB_PORT}", f"--db_access=yaml:{db_dir}", "2"],
            net.env(db.name, self.tango_host, None),  # NosqlTangoDB gives -ORBendPoint from --host/--port
        )
        wait_ready(net.processes["tango_db"], "NosqlTangoDB")
        for key, (host, argv) in self.servers().items():
            self.spawn_server(key, host, argv)
        for key in self.servers():
            wait_ready(net.processes[key], key)
        client = self.host("client")
        popen = net.spawn(client, "client", python_file(DRIVER), net.env(client, self.tango_host), pipes=True)
        self.client = Client(popen)
        c = self.client
        for name in [self.layout.control, *self.layout.receivers, self.conductor]:
            wait_for(lambda n=name: c(f"dev({n!r}).ping()") is not None, 60, f"{name} from the client host")
        wait_for(lambda: c(f"str(dev({self.conductor!r}).State())") not in ("INIT", "DISABLE"), 60, "conductor")

    def spawn_server(self, key: str, host: str, argv: list[str]) -> Process:
        net = self.net
        endpoint, publish = "", ""
        if host == self.multi_homed:
            h = net.hosts[host]
            far = h.extra[0] if h.extra else net.multi_home(host)
            endpoint = f"giop:tcp::{RECEIVER_PORT}"
            publish = f"giop:tcp:{far}:{RECEIVER_PORT},giop:tcp:{h.addr}:{RECEIVER_PORT}"
        net.spawn(host, key, argv, net.env(host, self.tango_host, endpoint, publish))
        return net.processes[key]

    def prober(self) -> Client:
        """A second client on the client host, for timing ``State``/``Status`` alone (the
        first one's own work would add its delays to the figures)."""
        if self._prober is None:
            client = self.host("client")
            popen = self.net.spawn(
                client, "prober", python_file(DRIVER), self.net.env(client, self.tango_host), pipes=True
            )
            self._prober = Client(popen)
        return self._prober

    def close(self) -> None:
        self.net.close()

    # -- conveniences ---------------------------------------------------------------------
    def c(self, expr: str, timeout: float = 30.0) -> Any:
        """``expr`` on the conductor's proxy (``c``) in the client host."""
        assert self.client is not None
        return self.client(f"(lambda c: {expr})(dev({self.conductor!r}))", timeout)

    def log(self, key: str) -> str:
        return self.net.processes[key].log.read_text(errors="replace")

    @property
    def conductor_log(self) -> str:
        return self.log(self.layout.conductor_instance)

    def wait_run_end(self, timeout: float = 60.0) -> str:
        wait_for(lambda: self.c("c.run_state") in ("DONE", "FAULT", "STOPPED"), timeout, "end of run")
        return str(self.c("c.run_state"))

    def reset(self) -> None:
        """Whatever a previous test left: stopped, reset, nothing running."""
        self.c("c.Stop()")
        wait_for(lambda: not self.c("c.running"), 30, "nothing running")

        def reset() -> bool:
            try:
                self.c("c.Reset()")
            except ClientError as exc:  # a link just back: the first call may still time out
                if exc.reason != "DEVICE_OFFLINE":
                    raise
                return False
            return True

        wait_for(reset, 30, "Reset")
        wait_for(lambda: self.c("c.run_state") == "IDLE", 30, "IDLE")


def python_file(path: str) -> list[str]:
    return [python("x")[0], path]


def now() -> float:
    return time.monotonic()
