"""The threads' rules (docs/design.rst, "Threads"), checked where a mistake would be silent:
the system's state changes only in the event loop's thread; h5py never runs there."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import importlib
import pkgutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lima2_conductor import core
from lima2_conductor.core import master_dense, master_sparse
from lima2_conductor.core.lima2 import DeviceState as D
from lima2_conductor.core.master_file import Saving
from lima2_conductor.core.run import Run
from lima2_conductor.core.state import RunState
from lima2_conductor.core.system import AcquisitionSystem
from lima2_conductor.core.thread_rules import WrongThread, forbid_loop_thread, in_loop_thread, require_loop_thread
from tests.fakes import FakeSystem, poll_until, until


def in_a_thread(work: Any) -> BaseException | None:
    """Run ``work`` in a plain thread (a request thread or a worker: no event loop there)."""
    failure: list[BaseException] = []

    def body() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed back
            failure.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return failure[0] if failure else None


def test_the_loop_thread_is_the_one_running_the_loop() -> None:
    async def main() -> None:
        assert in_loop_thread()
        require_loop_thread("a state change")
        with pytest.raises(WrongThread, match="worker thread"):
            forbid_loop_thread("an h5py write")
        assert isinstance(in_a_thread(lambda: require_loop_thread("a state change")), WrongThread)
        await asyncio.to_thread(forbid_loop_thread, "an h5py write")  # a worker: fine

    asyncio.run(main())
    assert not in_loop_thread()
    forbid_loop_thread("an h5py write")  # a script, a benchmark: no loop to block


def test_master_files_are_never_written_in_the_event_loop(tmp_path: Path) -> None:
    saving = Saving.from_params({"base_path": str(tmp_path)})

    async def main() -> None:
        with pytest.raises(WrongThread, match="master file"):
            master_dense.write("m.h5", saving, 0, [], (1, 2, 2), np.dtype("<u2"), {})
        with pytest.raises(WrongThread, match="master file"):
            master_sparse.write("m.h5", saving, 1, {})

    asyncio.run(main())
    assert list(tmp_path.iterdir()) == []


def stateful_core_classes() -> list[type]:
    """Every class of the core whose instances can change: not a frozen dataclass, an
    enum, an exception, a protocol or a tuple, and with no ``__setattr__`` of its own."""
    found = []
    for info in pkgutil.iter_modules(core.__path__):
        module = importlib.import_module(f"{core.__name__}.{info.name}")
        for cls in vars(module).values():
            if not isinstance(cls, type) or cls.__module__ != module.__name__:
                continue
            if issubclass(cls, (enum.Enum, BaseException, tuple)) or getattr(cls, "_is_protocol", False):
                continue
            if dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
                continue
            if cls.__setattr__ is object.__setattr__:
                found.append(cls)
    return found


@pytest.fixture
def state_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every change of an attribute of a core object made outside the event loop's thread.
    The first assignment of an attribute (an object a worker builds for its result) is
    not a change; a container changed in place (a list's append) is not seen."""
    outside: list[str] = []

    def watched_setattr(self: Any, name: str, value: Any) -> None:
        if not in_loop_thread() and name in getattr(self, "__dict__", ()):
            outside.append(f"{type(self).__name__}.{name}")
        object.__setattr__(self, name, value)

    classes = stateful_core_classes()
    assert AcquisitionSystem in classes and Run in classes  # the watch covers the system
    for cls in classes:
        monkeypatch.setattr(cls, "__setattr__", watched_setattr)
    return outside


def test_the_watch_sees_a_state_change_from_a_worker(state_writes: list[str]) -> None:
    async def scenario() -> None:
        f = FakeSystem()
        await asyncio.to_thread(setattr, f.system, "errors", [])

    asyncio.run(scenario())
    assert state_writes == ["AcquisitionSystem.errors"]


def test_the_system_changes_its_state_in_the_event_loop_only(tmp_path: Path, state_writes: list[str]) -> None:
    """A run saved to disk (master file checkpoints and the final file in workers), a
    failed one whose master file is completed later (in a worker too), Stop, Close and
    Reset: no object of the core is changed from a worker."""

    async def scenario() -> None:
        f = FakeSystem(checkpoint_s=0.0)
        s = f.system
        s.completions.period_s = 0.01
        for name in ("done", "failed"):
            (tmp_path / name).mkdir()
        await s.prepare({"processing": {"saving": {"enabled": True, "base_path": str(tmp_path / "done")}}})
        await s.start()
        await s.trigger()
        for p in f.procs:
            p.processed = p.saved = 2
        await s.poll()  # a checkpoint of the master file
        f.end_acquisition(5, saved=True)
        await poll_until(s, lambda: s.run_state == RunState.DONE, 50)
        assert s.run_state == RunState.DONE and s.run is not None and s.run.master_file

        # a receiver cut off mid-run, back once the run has failed: its master file completed
        await s.prepare({"processing": {"saving": {"enabled": True, "base_path": str(tmp_path / "failed")}}})
        await s.start()
        for p in f.procs:
            p.finished = False
            p.processed = p.saved = 3
        await s.poll()
        f.rcvs[1].offline = True
        f.procs[1].hung = True
        await poll_until(s, lambda: s.run_state == RunState.FAULT, 50)
        f.procs[0].processed = f.procs[0].saved = 4
        f.procs[0].finished = True
        run = s.run
        assert run is not None
        await poll_until(s, lambda: run.master_file, 50)
        assert run.master_file and s.completions.records
        record = s.completions.records[-1]
        f.rcvs[1].offline = False
        f.rcvs[1].state = D.IDLE
        await s.reset()
        f.procs[1].hung = False
        f.procs[1].saved, f.procs[1].finished = 10, True
        await until(lambda: record.state == "completed", "the completion of the failed run's master file")

        await s.prepare({})
        await s.start()
        await s.stop()
        for p in f.procs:
            p.finished = True
        await poll_until(s, lambda: s.run_state == RunState.STOPPED, 50)
        await s.close()

    asyncio.run(scenario())
    assert state_writes == []


def test_the_system_refuses_a_state_change_from_another_thread() -> None:
    """A request thread or a worker that changed the system's state would race the loop
    silently: the system's writers refuse it at once."""
    s = FakeSystem().system
    for change in (
        lambda: s.transition("Prepare"),
        lambda: s.record_error("boom"),
        lambda: s.note("a line"),
        lambda: s.replace_run(None),
        s.publish,
    ):
        assert isinstance(in_a_thread(change), WrongThread)
    assert s.run_state == RunState.IDLE and not s.errors and not s.history
