"""The real Tango services of a beamline, started privately: MariaDB and DataBaseds on
free ports in a temporary directory, Starter and TangoAccessControl when a test needs
them. Every process is a child of the tests (or, for servers that Starter starts, found
by the PID the database records) and is stopped by PID: no system service is used or
left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tango

from lima2_conductor.cli.launcher import Layout, LocalSystem, Process, free_port, wait_for

DEBIAN = {
    "mariadb-install-db": "/usr/bin/mariadb-install-db",
    "mariadbd": "/usr/sbin/mariadbd",
    "mariadb": "/usr/bin/mariadb",
    "DataBaseds": "/usr/lib/tango/DataBaseds",
    "Starter": "/usr/lib/tango/Starter",
    "TangoAccessControl": "/usr/lib/tango/TangoAccessControl",
    "tango_admin": "/usr/bin/tango_admin",
}
TANGO_SQL = Path("/usr/share/dbconfig-common/data/tango-db/install/mysql")
MISSING = [name for name, path in DEBIAN.items() if not os.access(path, os.X_OK)] + (
    [] if TANGO_SQL.exists() else [str(TANGO_SQL)]
)
SKIP_REASON = (
    f"the Debian Tango services are not installed (missing {', '.join(MISSING)}): "
    "apt-get install mariadb-server tango-db tango-starter tango-accesscontrol libtango-tools (see .ci/services)"
)
REQUIRED = os.environ.get("LIMA2_SERVICES") == "required"
"""Set by ``.ci/run``: missing packages then fail the tier instead of skipping it."""
SKIP = bool(MISSING) and not REQUIRED
HOST = socket.gethostname().split(".")[0]
"""The short host name: Starter's instance, and the host its servers are registered on."""


@dataclass
class RealTangoSystem(LocalSystem):
    """MariaDB + DataBaseds (the ``tango`` schema of the Debian package) instead of
    NosqlTangoDB; the device servers are started as :class:`LocalSystem` starts them."""

    mysql_port: int = field(default_factory=free_port)

    @property
    def tango_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.db_dir / "mysql.sock"

    def mysql_env(self) -> dict[str, str]:
        return {
            "MYSQL_HOST": f"127.0.0.1:{self.mysql_port}",
            "MYSQL_USER": "root",
            "MYSQL_PASSWORD": "",
            "MYSQL_DATABASE": "tango",
        }

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.mysql_env()}

    def sql(self, query: str) -> str:
        """Run SQL in the ``tango`` schema (as root through the unix socket)."""
        out = subprocess.run(
            [DEBIAN["mariadb"], "--no-defaults", f"--socket={self.socket_path}", "-N", "tango", "-e", query],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode:
            raise RuntimeError(f"SQL failed: {query}: {out.stderr}")
        return out.stdout

    def start_mariadb(self, timeout: float = 60.0) -> None:
        data = self.db_dir / "mysql"
        root = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                DEBIAN["mariadb-install-db"],
                f"--datadir={data}",
                *root,
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._spawn(
            "mariadbd",
            [
                DEBIAN["mariadbd"],
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={self.socket_path}",
                f"--port={self.mysql_port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.db_dir / 'mariadbd.pid'}",
                *root,
                "--skip-grant-tables",
            ],
        )
        wait_for(ready_server(self), timeout, "mariadbd")
        self.sql_root("create database tango")
        with TANGO_SQL.open("rb") as schema:
            subprocess.run(
                [DEBIAN["mariadb"], "--no-defaults", f"--socket={self.socket_path}", "tango"],
                stdin=schema,
                check=True,
                capture_output=True,
                timeout=120,
            )

    def sql_root(self, query: str) -> None:
        subprocess.run(
            [DEBIAN["mariadb"], "--no-defaults", f"--socket={self.socket_path}", "-e", query],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def start_db(self, timeout: float = 60.0) -> None:
        """DataBaseds (instance 2) on this system's port, reading the schema through MYSQL_*."""
        proc = self._spawn("tango_db", [DEBIAN["DataBaseds"], "2", "-ORBendPoint", f"giop:tcp:127.0.0.1:{self.port}"])

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"DataBaseds exited, see {proc.log}")
            ping = [DEBIAN["tango_admin"], "--ping-database"]
            return subprocess.run(ping, env=self.env(), capture_output=True, timeout=10).returncode == 0

        wait_for(ready, timeout, "DataBaseds", interval=0.2)

    def stop_db(self) -> None:
        self.processes.pop("tango_db").stop()

    def register(self, *args: str) -> str:
        """``lima2-tango-conductor register`` into this database; its output."""
        out = subprocess.run(
            [sys.executable, "-m", "lima2_conductor.cli", "register", "--tango-host", self.tango_host, *args],
            env={k: v for k, v in os.environ.items() if k != "TANGO_HOST"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def proxy(self, name: str) -> tango.DeviceProxy:
        """A proxy through this database, whatever this process's TANGO_HOST (a test
        session may have bound it to NosqlTangoDB)."""
        return tango.DeviceProxy(f"tango://{self.tango_host}/{name}")

    @contextlib.contextmanager
    def running(self, layout: Layout) -> Iterator[RealTangoSystem]:
        """The simulators and the conductor of ``layout`` (registered already), stopped
        by PID on exit."""
        try:
            self.start_simulators(layout)
            self.start_conductor(layout)
            yield self
        finally:
            self.stop_layout(layout)

    def idle_conductor(self, name: str) -> tango.DeviceProxy:
        """The conductor answering, nothing running, reset."""
        c = self.proxy(name)
        wait_for(lambda: c.State() != tango.DevState.INIT, 30, "conductor answering")
        c.Stop()
        wait_for(lambda: not c.running, 20, "nothing running")
        c.Reset()
        return c

    def database(self) -> tango.Database:
        return tango.Database("127.0.0.1", self.port)

    def server_pid(self, server: str) -> int:
        """PID the database records for a running server (0 when not exported)."""
        info = self.database().get_device_info(f"dserver/{server}")
        return int(info.pid) if info.exported else 0

    def run_python(self, code: str, *args: str, user: int | None = None, timeout: float = 120) -> str:
        """Run ``code`` in a new client process of this database; with ``user``, the
        process takes that user's effective uid (and group) once its imports are done,
        so that Tango access control sees that user while the interpreter and venv
        (under /root here) stay readable."""
        prelude = "import json, sys, tango\n"
        if user is not None:
            prelude += f"import os, pwd\n_pw = pwd.getpwuid({user})\nos.setegid(_pw.pw_gid)\nos.seteuid({user})\n"
        out = subprocess.run(
            [sys.executable, "-c", prelude + code, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout


def ready_server(system: RealTangoSystem) -> Any:
    def ready() -> bool:
        proc = system.processes["mariadbd"]
        if not proc.alive():
            raise RuntimeError(f"mariadbd exited, see {proc.log}")
        out = subprocess.run(
            [DEBIAN["mariadb"], "--no-defaults", f"--socket={system.socket_path}", "-N", "-e", "select 1"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.returncode == 0 and out.stdout.strip() == "1"

    return ready


def kill_pid(pid: int, name: str) -> None:
    """SIGKILL ``pid`` if it is still the process ``name`` (its command line says so)."""
    with contextlib.suppress(OSError):
        if name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


def spawn(system: RealTangoSystem, key: str, args: list[str], env: dict[str, str] | None = None) -> Process:
    """A child process with this system's environment (plus ``env``), stopped by PID."""
    log = system.log_dir / f"{key}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            args,
            env={**system.env(), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=system.log_dir,
        )
    proc = Process(key, popen, log)
    system.processes[key] = proc
    return proc


def venv_bin() -> Path:
    """Where this venv's server executables (``Lima2Conductor``, ``Lima2Simulator``) are."""
    return Path(sys.executable).parent
