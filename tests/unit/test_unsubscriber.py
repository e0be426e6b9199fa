"""The unsubscriber thread: a bounded drain, and a log line for an unsubscription that hangs."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from lima2_conductor.backend.tango_devices import Unsubscriber


class BlockingProxy:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.ended: list[int] = []

    def dev_name(self) -> str:
        return "id00/limaprocessing/hung"

    def unsubscribe_event(self, event_id: int, green_mode: object = None) -> None:
        self.release.wait(10)
        self.ended.append(event_id)


def test_a_hung_unsubscription_is_logged_and_the_drain_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    unsubscriber = Unsubscriber()
    unsubscriber.HANG_S = 0.05
    proxy = BlockingProxy()
    caplog.set_level(logging.WARNING)
    unsubscriber.submit([(proxy, 7)])
    t0 = time.monotonic()
    assert not unsubscriber.drain(0.3)  # bounded: returns although the unsubscription hangs
    assert time.monotonic() - t0 < 5
    deadline = time.monotonic() + 5
    while not any("still waiting" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "no log line for the hung unsubscription"
        time.sleep(0.01)
    message = next(r.getMessage() for r in caplog.records if "still waiting" in r.getMessage())
    assert "7" in message and "id00/limaprocessing/hung" in message
    proxy.release.set()
    assert unsubscriber.drain(5)
    assert proxy.ended == [7]
