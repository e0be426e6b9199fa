"""A tick never waits on one device: reads slower than the tick's grace are taken by a
later tick (the core on fakes)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lima2_conductor.core.inflight import PENDING, InFlight
from lima2_conductor.core.lima2 import DeviceState as D
from lima2_conductor.core.state import RunState
from tests.fakes import FakeSystem


def test_a_read_is_made_once_and_its_reply_taken_later() -> None:
    async def scenario() -> None:
        reads = InFlight()
        started = 0

        async def slow() -> int:
            nonlocal started
            started += 1
            await asyncio.sleep(0.05)
            return 42

        assert await reads.read("d", slow, 1.0, 0.001, tag=1) == (PENDING, 1)
        assert await reads.read("d", slow, 1.0, 0.001, tag=2) == (PENDING, 1)  # the same read
        assert await reads.read("d", slow, 1.0, 1.0, tag=3) == (42, 1)
        assert started == 1 and not reads.pending("d")
        assert await reads.read("d", slow, 1.0, None, tag=4) == (42, 4)  # waited for, its own

    asyncio.run(scenario())


def test_ticks_do_not_wait_on_a_device_that_does_not_answer() -> None:
    async def scenario() -> None:
        f = FakeSystem()  # poll timeout 0.2 s
        s = f.system
        await s.prepare({})
        await s.start()
        hung = asyncio.Event()

        async def never() -> Any:
            await hung.wait()

        f.rcvs[1].poll = never  # type: ignore[method-assign]
        f.procs[1].hung = True
        f.procs[0].processed = 5
        t0 = time.monotonic()
        await s.poll(grace=0.01)
        assert time.monotonic() - t0 < 0.15  # not the 0.2 s deadline of the hung reads
        assert s.progress.per_receiver("nb_frames_processed", ["rcv0"]) == [5]
        # the reads that time out count as misses: the device is found offline all the same
        end = time.monotonic() + 5
        while s.device_states["rcv1"] != D.OFFLINE:
            assert time.monotonic() < end, "never found offline"
            await s.poll(grace=0.01)
        while s.run_state != RunState.FAULT:
            assert time.monotonic() < end, "the run never failed"
            await s.poll(grace=0.01)
        assert "rcv1 is offline" in s.last_error

    asyncio.run(scenario())
