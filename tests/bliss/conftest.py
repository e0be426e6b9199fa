"""A real Bliss 2.4 session against the simulated Lima2 system.

One NosqlTangoDB with the simulators and the conductor of ``id00`` (the conductor name of
the README's YAML), one Beacon serving ``beacon_config/``, one Bliss session with the
conductor object ``det``, a ``simulation_diode`` and a ``mockup`` motor; scans use the
null writer. Skipped, with the reason, where Bliss is not installed (``.[bliss-test]``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lima2_conductor.cli.launcher import Layout, LocalSystem, running_db

try:
    from . import standins

    standins.install()
    SKIP_REASON = ""
except ImportError as exc:
    SKIP_REASON = f"Bliss is not installed ({exc}); install the extras: pip install -e '.[test,bliss-test]'"

HERE = Path(__file__).parent
LAYOUT = Layout(2, "id00", sensor=(256, 256))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SKIP_REASON:
        for item in items:
            if HERE in Path(str(item.fspath)).parents and "bliss_env" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def pytest_report_header(config: pytest.Config) -> str:
    return f"tests/bliss: skipped: {SKIP_REASON}" if SKIP_REASON else "tests/bliss: Bliss 2.4 session"


@dataclass
class BlissEnv:
    system: LocalSystem
    config: Any
    session: Any
    det: Any
    diode: Any
    mot: Any
    data_dir: Path

    def receiver(self, i: int) -> Any:
        import tango

        return tango.DeviceProxy(LAYOUT.receiver(i))


@pytest.fixture(scope="session")
def bliss_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlissEnv]:
    from .beacon import running_beacon

    work = tmp_path_factory.mktemp("bliss")
    shutil.copytree(HERE / "beacon_config", work / "config")
    with running_db([LAYOUT], work / "tango") as system, running_beacon(work / "config", work) as beacon:
        os.environ["TANGO_HOST"] = system.tango_host
        os.environ["BEACON_HOST"] = beacon.host
        system.start_simulators(LAYOUT)
        system.start_conductor(LAYOUT)
        from bliss.config.static import get_config

        config = get_config()
        session = config.get("lima2_session")
        session.setup()
        session.scan_saving.base_path = str(work / "data")
        session.scan_saving.writer = "null"
        env = BlissEnv(
            system, config, session, config.get("det"), config.get("diode"), config.get("mot"), work / "data"
        )
        try:
            yield env
        finally:
            session.close()
