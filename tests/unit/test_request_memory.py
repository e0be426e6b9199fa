"""RequestMemory: one trim, in a worker thread, after a burst of large requests."""

from __future__ import annotations

import asyncio
import threading

from lima2_conductor.device import request_memory
from lima2_conductor.device.request_memory import LARGE_REQUEST, RequestMemory


def run_burst(memory: RequestMemory, sizes: list[int], calls: list[str]) -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        memory._trim = lambda: calls.append("loop" if threading.get_ident() == loop_thread else "worker")
        for size in sizes:
            memory.served(size)
            await asyncio.sleep(0)
        deadline = loop.time() + 5
        while memory._pending is not None or (memory.trims == 0 and any(s >= LARGE_REQUEST for s in sizes)):
            assert loop.time() < deadline, "no trim after the burst"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_one_trim_in_a_worker_after_a_burst_of_large_requests(monkeypatch) -> None:
    monkeypatch.setattr(request_memory, "TRIM_DELAY_S", 0.05)
    memory, calls = RequestMemory({}), []
    run_burst(memory, [LARGE_REQUEST * 20] * 5, calls)
    assert calls == ["worker"]


def test_small_requests_trim_nothing(monkeypatch) -> None:
    monkeypatch.setattr(request_memory, "TRIM_DELAY_S", 0.05)
    memory, calls = RequestMemory({}), []
    run_burst(memory, [10, LARGE_REQUEST - 1], calls)
    assert calls == [] and memory._pending is None


def test_the_off_switch() -> None:
    assert not RequestMemory({request_memory.OFF_SWITCH: "0"}).enabled
    assert RequestMemory({}).enabled  # glibc here
