"""Shared fixtures: one NosqlTangoDB for the whole session (a Tango client process
reads TANGO_HOST once), systems started per module in their own domains and
stopped by PID."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lima2_conductor.cli.launcher import Layout, LocalSystem, running_db

OWN_BASETEMP = pytest.StashKey[str]()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """Each session gets its own temporary directory. Pytest's default numbered ones
    (``pytest-of-<user>/pytest-N``) are pruned by any other session of the same user: a
    second copy of the suite would delete this one's Tango database under it.

    SIGTERM (``timeout``, a CI runner cancelling a job) ends the session as Ctrl-C does:
    the fixtures' teardowns stop every server they started, by PID, instead of leaving
    them running."""
    signal.signal(signal.SIGTERM, _interrupted)
    if config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="lima2-tests-")
        config.stash[OWN_BASETEMP] = config.option.basetemp


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session's own directory goes when everything passed; kept (logs of every
    server) otherwise."""
    own = session.config.stash.get(OWN_BASETEMP, None)
    if own is None:
        return
    if exitstatus == 0:
        shutil.rmtree(own, ignore_errors=True)
    else:
        print(f"\nserver logs and data of this session are kept in {own}")


def release_event_subscriptions() -> None:
    """Unsubscribe every event of every ``DeviceProxy`` left in this process.

    A proxy that still has subscriptions when the garbage collector frees it unsubscribes
    in its destructor, which waits for Tango's event-callback lock. When the collection
    happens inside an event callback (any allocation there can trigger it), that thread
    holds the lock already: the event system deadlocks, and with it every later
    subscription and the exit of this process. So subscriptions are ended here, in the
    main thread, then the garbage is collected."""
    import tango

    for obj in gc.get_objects():
        if isinstance(obj, tango.DeviceProxy) and obj.__dict__.get("_subscribed_events"):
            with contextlib.suppress(tango.DevFailed, KeyError):
                # pytango's own "unsubscribe all" (set on the class under this very name)
                getattr(obj, "__unsubscribe_event_all")()
    gc.collect()


@pytest.fixture(autouse=True, scope="module")
def _no_subscription_outlives_its_module() -> Iterator[None]:
    yield
    release_event_subscriptions()


DEFAULT = Layout(2, "id00")
SINGLE = Layout(1, "id01")
FOUR = Layout(4, "id04")
THREE = Layout(3, "id03", sensor=(256, 192))
DYNAMIC = Layout(2, "id05", sensor=(128, 128), topology="dynamic")
LAYOUTS = [DEFAULT, SINGLE, FOUR, THREE, DYNAMIC]


@pytest.fixture(scope="session")
def tango_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    with running_db(LAYOUTS, tmp_path_factory.mktemp("tango")) as system:
        os.environ["TANGO_HOST"] = system.tango_host
        yield system


def start(db: LocalSystem, layout: Layout, conductor: bool) -> Iterator[LocalSystem]:
    try:
        db.start_simulators(layout)
        if conductor:
            db.start_conductor(layout)
        yield db
    finally:
        db.stop_layout(layout)


@pytest.fixture(scope="module")
def system2(tango_db: LocalSystem) -> Iterator[LocalSystem]:
    """Control + 2 receivers of ``id00`` (no conductor)."""
    yield from start(tango_db, DEFAULT, conductor=False)


@pytest.fixture(scope="module")
def system2c(tango_db: LocalSystem) -> Iterator[LocalSystem]:
    """Control + 2 receivers + conductor of ``id00``."""
    yield from start(tango_db, DEFAULT, conductor=True)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d
