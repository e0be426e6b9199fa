"""Fixtures of the simulated-hosts tier: one set of hosts per test module.

Without root (or without ``ip``/``unshare``) the tier skips, saying why; with
``LIMA2_HOSTS_REQUIRED=1`` (CI) it fails instead, so that it can never be skipped there
unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lima2_conductor.cli.launcher import Layout
from tests.hosts.cluster import HostSystem
from tests.hosts.netns import Network, sweep_stale, unavailable

LAYOUT = Layout(2, "id00", sensor=(128, 128))


def require_hosts() -> None:
    why = unavailable()
    if why:
        if os.environ.get("LIMA2_HOSTS_REQUIRED") == "1":
            pytest.fail(f"LIMA2_HOSTS_REQUIRED=1 but {why}")
        pytest.skip(why)


HostsFactory = Callable[..., HostSystem]


@pytest.fixture(scope="module")
def make_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostsFactory]:
    """Build (and at the end tear down, whatever happened) hosts for this module."""
    require_hosts()
    sweep_stale()
    made: list[HostSystem] = []

    def make(multi_homed: str = "", conductor_properties: dict[str, object] | None = None) -> HostSystem:
        base = tmp_path_factory.mktemp("hosts")
        system = HostSystem(Network(base / "run"), LAYOUT, base / "shared", multi_homed, conductor_properties or {})
        made.append(system)
        system.start()
        return system

    try:
        yield make
    finally:
        for system in made:
            system.close()


@pytest.fixture
def data_dir(hosts: HostSystem, request: pytest.FixtureRequest) -> Path:
    """A directory of the shared disk for this test."""
    d = hosts.data / request.node.name.replace("[", "_").replace("]", "")
    d.mkdir()
    return d
