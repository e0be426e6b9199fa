"""Tango's hooks stay in the request thread: PyTango must leave them unwrapped (it wraps
standard methods of asyncio devices into its event-loop executor unless marked)."""

from __future__ import annotations

import pytest

from lima2_conductor.device.conductor import Lima2Conductor
from lima2_conductor.request_thread import RequestThreadHooks
from lima2_conductor.simulator.control import LimaSimulatorControl
from lima2_conductor.simulator.processing import LimaProcessingLegacy, LimaProcessingSmx
from lima2_conductor.simulator.receiver import LimaSimulatorReceiver


@pytest.mark.parametrize(
    "cls", [Lima2Conductor, LimaSimulatorControl, LimaSimulatorReceiver, LimaProcessingLegacy, LimaProcessingSmx]
)
def test_hooks_are_left_unwrapped(cls: type) -> None:
    for name in ("always_executed_hook", "read_attr_hardware"):
        assert getattr(cls, name) is getattr(RequestThreadHooks, name), f"{cls.__name__}.{name} was wrapped"


def test_the_conductors_state_and_status_are_left_unwrapped() -> None:
    for name in ("dev_state", "dev_status"):
        assert not hasattr(getattr(Lima2Conductor, name), "__wrapped__"), name
