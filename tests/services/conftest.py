"""One private Tango database (MariaDB + DataBaseds) for the whole tier, stopped by PID
at its end, also after a failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .tango_services import MISSING, REQUIRED, SKIP_REASON, RealTangoSystem


@pytest.fixture(scope="package")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealTangoSystem]:
    if MISSING:
        if REQUIRED:
            pytest.fail(SKIP_REASON)
        pytest.skip(SKIP_REASON)
    base = tmp_path_factory.mktemp("services")
    system = RealTangoSystem(db_dir=base, log_dir=base)
    try:
        system.start_mariadb()
        system.start_db()
        yield system
    finally:
        system.stop()
