"""The monitor's ticks never wait on the ``last_image`` fetch (a frame from a slow or
half-reachable host stalled progress for seconds)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np

from lima2_conductor.core.devencoded import encode_frame
from lima2_conductor.device.monitor import Monitor


class Core:
    """Just what the monitor's loop reads of the system: a run that is running."""

    def __init__(self) -> None:
        self.running = True
        self.run = SimpleNamespace(uuid="u", progress=SimpleNamespace(nb_frames_processed=5))
        self.release = asyncio.Event()
        self.fetches = 0

    async def poll(self, grace: float | None = None) -> None:
        pass

    async def news(self, delay: float, min_gap: float) -> None:
        await asyncio.sleep(max(delay, min_gap))

    async def get_frame(self, idx: int) -> tuple[str, bytes]:
        self.fetches += 1
        await self.release.wait()  # a fetch that takes as long as the test wants
        return encode_frame(np.full((1, 4, 4), 7, dtype=np.uint16), 4)


def test_ticks_go_on_while_the_last_image_is_fetched() -> None:
    async def scenario() -> None:
        core = Core()
        pushed: list[Any] = []
        device = SimpleNamespace(
            system=core,
            progress_event_period_ms=5,
            image_period_ms=0,
            image_idx=-1,
            image=None,
            push_change_event=lambda *args: pushed.append(args[0]),
        )
        monitor = Monitor(device)  # type: ignore[arg-type]
        monitor.values.decided = True  # no Tango polling buffer here
        monitor.values.push = lambda name, value: pushed.append(name)  # type: ignore[method-assign]
        monitor.start()
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + 5
            while monitor.ticks < 20:
                assert loop.time() < end, f"{monitor.ticks} ticks: a tick waits on the fetch"
                await asyncio.sleep(0.01)
            assert core.fetches == 1  # one fetch at a time, still under way
            core.release.set()
            while device.image_idx != 4:
                assert loop.time() < end, "the image never arrived"
                await asyncio.sleep(0.01)
            assert "last_image" in pushed and device.image.shape == (4, 4)
        finally:
            await asyncio.gather(*monitor.stop(), return_exceptions=True)

    asyncio.run(scenario())
