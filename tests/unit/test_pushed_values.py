"""The servers' one silent thread rule, checked: events are pushed from the event loop's
thread only (a push from a request thread or a worker raises instead of racing)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from lima2_conductor.core.thread_rules import WrongThread
from lima2_conductor.server.pushed_values import PushedValues, require_loop_thread


class FakeDevice:
    def __init__(self) -> None:
        self.pushed: list[tuple[str, Any]] = []

    def get_name(self) -> str:
        return "id00/fake/1"

    def push_change_event(self, name: str, value: Any) -> None:
        self.pushed.append((name, value))


def test_a_push_from_the_loop_goes_out() -> None:
    device = FakeDevice()
    values = PushedValues(device, ["acq_state"])

    async def main() -> None:
        values.push("acq_state", 2)
        require_loop_thread("anything")

    asyncio.run(main())
    assert device.pushed == [("acq_state", 2)]


def test_a_push_from_another_thread_raises_and_sends_nothing() -> None:
    device = FakeDevice()
    values = PushedValues(device, ["acq_state"])
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            values.push("acq_state", 2)
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    async def main() -> None:
        thread = threading.Thread(target=worker)  # a worker beside a running loop
        thread.start()
        await asyncio.to_thread(thread.join)

    asyncio.run(main())
    assert len(errors) == 1 and isinstance(errors[0], WrongThread)
    assert device.pushed == []


def test_no_loop_at_all_raises() -> None:
    with pytest.raises(WrongThread, match="event loop"):
        require_loop_thread("push of nb_frames_xferred")
