"""The database's thread: calls in order, a call given up before its turn never sent, and
a bounded wait at exit while a call hangs."""

from __future__ import annotations

import threading

import pytest

from lima2_conductor.backend.database import _Worker


def test_calls_run_in_order_and_give_their_results() -> None:
    worker = _Worker("test-database")
    seen: list[int] = []
    futures = [worker.submit(lambda k=k: seen.append(k) or k * 10) for k in range(5)]
    assert [f.result(5) for f in futures] == [0, 10, 20, 30, 40]
    assert seen == [0, 1, 2, 3, 4]


def test_an_error_goes_to_its_caller_and_the_thread_goes_on() -> None:
    worker = _Worker("test-database")

    def fail() -> None:
        raise RuntimeError("no database")

    with pytest.raises(RuntimeError, match="no database"):
        worker.submit(fail).result(5)
    assert worker.submit(lambda: "next").result(5) == "next"


def test_a_call_given_up_before_its_turn_is_never_made() -> None:
    worker = _Worker("test-database")
    release = threading.Event()
    made: list[str] = []
    hung = worker.submit(lambda: release.wait(10))
    given_up = worker.submit(lambda: made.append("given up"))
    assert given_up.cancel()  # its caller's deadline passed while the first call hung
    assert not worker.idle(0.2)  # bounded: the hung call is still running
    release.set()
    assert hung.result(5) is True
    assert worker.submit(lambda: made.append("later")).result(5) is None
    assert made == ["later"] and worker.idle(5)
