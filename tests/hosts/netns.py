"""Simulated hosts: network namespaces joined by veth pairs to a bridge of their own.

Each host is a network namespace with its own loopback, one address of 198.18.7.0/24
(the benchmark range 198.18.0.0/15, nothing else) and, for every process started on it,
its own hostname and ``/etc/hosts`` (``unshare -u -m``). The hostname matters: omniORB
also publishes a unix-socket endpoint, and a client on the same hostname uses it, so a
"remote" server sharing the hostname is reached whatever the network does.

The bridge lives in a namespace of its own: the root namespace gets no address and no
route. A partition is the host's bridge port set down (no ``tc netem`` here). Every name
(namespaces, veths) carries a per-run prefix, so two copies of the suite run side by
side; :meth:`Network.close` stops every process by PID, then deletes every namespace
with the prefix (their veths go with them), also after a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lima2_conductor.cli.launcher import Process, wait_for

SUBNET = "198.18.7"
"""The hosts' link: 198.18.7.0/24."""
SILENT_HOP = f"{SUBNET}.99"
"""An address of the link that nobody holds: packets routed to it go nowhere (ARP
never answers), so a connect to an address routed through it hangs."""
UNREACHABLE_NET = "198.18.9"
"""Published first by a multi-homed host; routed to :data:`SILENT_HOP` on every other host."""
DB_PORT = 10000
PREFIX_ROOT = "l2h"


def unavailable() -> str:
    """Why namespaces cannot be built here ('' when they can)."""
    if os.geteuid() != 0:
        return "simulated hosts need root (network namespaces, veth pairs, bind mounts)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"simulated hosts need {tool!r} (iproute2 / util-linux)"
    return ""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def sweep(prefix: str) -> None:
    """Stop every process left in a namespace named ``prefix*`` (by PID), then delete
    those namespaces (their veths with them)."""
    for ns in namespaces():
        if not ns.startswith(prefix):
            continue
        pids = _ip("netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", ns, check=False)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(prefix):
            _ip("link", "del", name, check=False)


def run_prefix() -> str:
    """``l2h`` + this process's PID (6 hex digits) + 2 random ones: unique while this
    process lives, and a run whose process died is recognised (:func:`sweep_stale`)."""
    return f"{PREFIX_ROOT}{os.getpid():06x}{secrets.token_hex(1)}"


def sweep_stale() -> None:
    """Remove what runs killed before their clean-up left (their process is gone)."""
    for ns in namespaces():
        pid = ns[len(PREFIX_ROOT) : len(PREFIX_ROOT) + 6]
        if ns.startswith(PREFIX_ROOT) and len(pid) == 6 and all(c in "0123456789abcdef" for c in pid):
            if not os.path.exists(f"/proc/{int(pid, 16)}"):
                sweep(ns[: len(PREFIX_ROOT) + 8])


@dataclass
class Host:
    """One simulated host: a namespace, an address, a hostname."""

    name: str
    ns: str
    hostname: str
    addr: str
    port: str  # its veth's bridge-side end (set down to cut the host off)
    extra: list[str] = field(default_factory=list)  # more local addresses (multi-homed)


@dataclass
class Network:
    """The hosts of one test module and the processes they run."""

    workdir: Path
    prefix: str = field(default_factory=run_prefix)
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}br"

    @property
    def hosts_file(self) -> Path:
        return self.workdir / "hosts"

    def build(self, names: list[str]) -> None:
        """The bridge and one host per name, each with its address and loopback."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        _ip("netns", "add", self.bridge_ns)
        _ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        for i, name in enumerate(names, start=1):
            host = Host(name, f"{self.prefix}h{i}", f"{self.prefix}-{name}", f"{SUBNET}.{i}", f"{self.prefix}p{i}")
            self.hosts[name] = host
            nic = f"{self.prefix}v{i}"
            _ip("netns", "add", host.ns)
            _ip(
                "link", "add", nic, "netns", host.ns, "type", "veth", "peer", "name", host.port, "netns", self.bridge_ns
            )
            _ip("-n", self.bridge_ns, "link", "set", host.port, "master", "br0", "up")
            _ip("-n", host.ns, "link", "set", "lo", "up")
            _ip("-n", host.ns, "addr", "add", f"{host.addr}/24", "dev", nic)
            _ip("-n", host.ns, "link", "set", nic, "up")
        lines = ["127.0.0.1 localhost"] + [f"{h.addr} {h.hostname} {h.name}" for h in self.hosts.values()]
        self.hosts_file.write_text("\n".join(lines) + "\n")

    def multi_home(self, name: str) -> str:
        """Give host ``name`` a second address, one that no other host can reach (routed
        to a silent next hop everywhere else); returns it."""
        host = self.hosts[name]
        index = list(self.hosts).index(name) + 1
        extra = f"{UNREACHABLE_NET}.{index}"
        _ip("-n", host.ns, "addr", "add", f"{extra}/32", "dev", f"{self.prefix}v{index}")
        host.extra.append(extra)
        for other in self.hosts.values():
            if other is not host:
                _ip("-n", other.ns, "route", "replace", f"{UNREACHABLE_NET}.0/24", "via", SILENT_HOP)
        return extra

    # -- partitions -------------------------------------------------------------------
    def cut(self, name: str) -> None:
        """Cut host ``name`` off the network (its bridge port down)."""
        _ip("-n", self.bridge_ns, "link", "set", self.hosts[name].port, "down")

    def heal(self, name: str) -> None:
        _ip("-n", self.bridge_ns, "link", "set", self.hosts[name].port, "up")

    @contextlib.contextmanager
    def partitioned(self, name: str) -> Iterator[None]:
        self.cut(name)
        try:
            yield
        finally:
            self.heal(name)

    # -- processes ----------------------------------------------------------------------
    def command(self, name: str, argv: list[str]) -> list[str]:
        """``argv`` run on host ``name``: its namespace, hostname and ``/etc/hosts``."""
        host = self.hosts[name]
        script = f'hostname {host.hostname} && mount --bind {self.hosts_file} /etc/hosts && exec "$@"'
        return ["ip", "netns", "exec", host.ns, "unshare", "-u", "-m", "sh", "-c", script, "sh", *argv]

    def env(self, name: str, tango_host: str, endpoint: str | None = "", publish: str = "") -> dict[str, str]:
        env = dict(os.environ)
        env["TANGO_HOST"] = tango_host
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("ORBendPointPublish", None)
        env.pop("ORBendPoint", None)
        if endpoint is not None:  # None: the server sets its own (-ORBendPoint)
            env["ORBendPoint"] = endpoint or f"giop:tcp:{self.hosts[name].addr}:"
        if publish:
            env["ORBendPointPublish"] = publish
        return env

    def spawn(
        self, host: str, key: str, argv: list[str], env: dict[str, str], pipes: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on ``host`` in its own session, logged to ``workdir/key.log``
        (or with stdin/stdout pipes: a driver), kept to be stopped by PID."""
        log = self.workdir / f"{key}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                self.command(host, argv),
                env=env,
                stdout=subprocess.PIPE if pipes else out,
                stderr=out,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes[key] = Process(key, popen, log)
        return popen

    def stop(self, key: str) -> None:
        proc = self.processes.pop(key, None)
        if proc is not None:
            proc.stop(grace=3.0)

    def close(self) -> None:
        """Stop every process by PID, then delete every namespace of this run."""
        for key in reversed(list(self.processes)):
            with contextlib.suppress(Exception):
                self.stop(key)
        sweep(self.prefix)


def wait_ready(proc: Process, what: str, timeout: float = 90.0, offset: int = 0) -> None:
    """Until the Tango server of ``proc`` says it accepts requests."""

    end = time.monotonic() + timeout
    while True:
        with proc.log.open("rb") as f:
            f.seek(offset)
            if b"Ready to accept request" in f.read():
                return
        if not proc.alive():
            raise RuntimeError(f"{what} exited, see {proc.log}")
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s, see {proc.log}")
        time.sleep(0.1)


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def deadline_loop(timeout: float, interval: float = 0.02) -> Iterator[float]:
    """Yield the time left until ``timeout`` s have passed (a polling loop with a deadline)."""
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        yield left
        time.sleep(interval)


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    wait_for(condition, timeout, what, interval=0.05)
