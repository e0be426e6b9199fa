"""Shared fixtures: a whole simulated system in subprocesses, cleaned up by PID."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lima2_conductor.launcher import LocalSystem, local_system


@pytest.fixture(scope="module")
def system2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    """DB + control + 2 receivers (no conductor); TANGO_HOST points at it."""
    with _system(tmp_path_factory.mktemp("sys2"), nb_receivers=2) as s:
        yield s


def _system(workdir: Path, **kwargs: object):
    class _Ctx:
        def __enter__(self) -> LocalSystem:
            self._cm = local_system(workdir=workdir, **kwargs)  # type: ignore[arg-type]
            self._old = os.environ.get("TANGO_HOST")
            s = self._cm.__enter__()
            os.environ["TANGO_HOST"] = s.tango_host
            return s

        def __exit__(self, *exc: object) -> None:
            self._cm.__exit__(*exc)
            if self._old is None:
                os.environ.pop("TANGO_HOST", None)
            else:
                os.environ["TANGO_HOST"] = self._old

    return _Ctx()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d
