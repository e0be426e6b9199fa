"""core.exclusive: one subscription or erasure at a time, until the work has really ended."""

from __future__ import annotations

import asyncio

import pytest

from lima2_conductor.core.exclusive import exclusive


def test_result_and_errors_pass_through() -> None:
    async def main() -> None:
        async def ok() -> int:
            return 7

        async def bad() -> None:
            raise ValueError("device said no")

        assert await exclusive(ok()) == 7
        with pytest.raises(ValueError, match="device said no"):
            await exclusive(bad())

    asyncio.run(main())


def test_a_caller_cancelled_twice_holds_the_lock_until_the_work_ends() -> None:
    async def main() -> None:
        release = asyncio.Event()
        events: list[str] = []

        async def slow() -> str:
            await release.wait()
            events.append("slow ended")
            return "slow"

        async def next_one() -> str:
            events.append("next ran")
            return "next"

        caller = asyncio.create_task(exclusive(slow()))
        await asyncio.sleep(0)
        caller.cancel()
        await asyncio.sleep(0)
        caller.cancel()  # a second cancellation must not release the lock either
        await asyncio.sleep(0)
        follower = asyncio.create_task(exclusive(next_one()))
        for _ in range(5):
            await asyncio.sleep(0)
        assert events == []  # the follower waits: the device call has not ended
        assert not caller.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert await follower == "next"
        assert events == ["slow ended", "next ran"]

    asyncio.run(main())


def test_the_error_of_work_whose_caller_left_is_retrieved() -> None:
    async def main() -> None:
        release = asyncio.Event()
        unretrieved: list[object] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: unretrieved.append(ctx))

        async def failing() -> None:
            await release.wait()
            raise RuntimeError("late failure")

        caller = asyncio.create_task(exclusive(failing()))
        await asyncio.sleep(0)
        caller.cancel()
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await caller
        import gc

        gc.collect()
        assert unretrieved == []

    asyncio.run(main())


def test_a_timeout_around_it_still_times_out() -> None:
    async def main() -> None:
        async def slow() -> None:
            await asyncio.sleep(0.05)

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.001):
                await exclusive(slow())

    asyncio.run(main())
