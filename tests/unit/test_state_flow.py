"""How the system's state flows: what a command, a tick or a cancel leaves in the system's
record (errors, run state) and in the snapshots it hands the device."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lima2_conductor.core.errors import ConductorError, DeviceError
from lima2_conductor.core.state import RunState
from tests.fakes import FakeSystem


async def until(condition: Any, what: str, timeout: float = 5.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < end, what
        await asyncio.sleep(0.001)


def test_a_rollback_interrupted_by_stop_keeps_its_errors() -> None:
    """A failed Prepare rolls back; a Stop that cancels it meanwhile waits for the rollback
    to end, and the devices that refused their Reset are still named in ``errors``."""

    async def scenario() -> None:
        f = FakeSystem(timeout_s=2.0)
        s = f.system
        f.rcvs[1].fail["prepare"] = DeviceError("no way", "rcv1")
        f.ctl.delay["reset"] = 0.05
        f.ctl.fail["reset"] = DeviceError("cannot reset", "ctl")
        prepare = asyncio.ensure_future(s.prepare({}))
        await until(lambda: "reset" in f.ctl.calls, "the rollback reached the control")
        await s.stop()
        with pytest.raises(ConductorError):
            await prepare
        assert s.run_state == RunState.IDLE
        assert any("cannot reset" in e for e in s.errors), s.errors

    asyncio.run(scenario())
