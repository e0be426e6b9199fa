"""Which path the standard methods take on this PyTango (see
:mod:`lima2_conductor.server.request_thread`): left unwrapped in the request thread where PyTango
honours its private mark and the switch is on, handed to PyTango as coroutine functions
(run in the event loop) otherwise. ``tests/device`` runs the devices on both paths."""

from __future__ import annotations

import inspect

import pytest
import tango
from tango.server import Device

from lima2_conductor.device.conductor import Lima2Conductor
from lima2_conductor.server import request_thread
from lima2_conductor.server.request_thread import (
    SWITCH,
    RequestThreadHooks,
    in_request_thread,
    mark_honoured,
    request_thread_hooks,
    request_thread_path,
    switched_on,
)
from lima2_conductor.simulator.control import LimaSimulatorControl
from lima2_conductor.simulator.processing import LimaProcessingLegacy, LimaProcessingSmx
from lima2_conductor.simulator.receiver import LimaSimulatorReceiver
from tests.device.thread_probe import expected_mark_honoured

DEVICES = [Lima2Conductor, LimaSimulatorControl, LimaSimulatorReceiver, LimaProcessingLegacy, LimaProcessingSmx]


def test_this_pytango_takes_the_path_its_version_is_known_for() -> None:
    expected = expected_mark_honoured(tango.__version__)
    if expected is None:
        pytest.skip(f"PyTango {tango.__version__} is not in tests/device/thread_probe.py's table yet")
    assert mark_honoured() is expected, tango.__version__
    assert request_thread_hooks() is (expected and switched_on())
    assert ("request thread" if request_thread_hooks() else "event loop") in request_thread_path()


@pytest.mark.parametrize("cls", DEVICES)
def test_hooks_take_the_detected_path(cls: type) -> None:
    for name in ("always_executed_hook", "read_attr_hardware"):
        if request_thread_hooks():
            assert getattr(cls, name) is getattr(RequestThreadHooks, name), f"{cls.__name__}.{name} was wrapped"
        else:
            assert getattr(cls, name) is not getattr(RequestThreadHooks, name)


def test_the_conductors_state_and_status_take_the_detected_path() -> None:
    for name in ("dev_state", "dev_status"):
        assert hasattr(getattr(Lima2Conductor, name), "__wrapped__") is not request_thread_hooks(), name


@pytest.mark.parametrize(("value", "on"), [(None, True), ("1", True), ("0", False), (" Off ", False), ("no", False)])
def test_the_switch(value: str | None, on: bool) -> None:
    assert switched_on({} if value is None else {SWITCH: value}) is on


def test_switched_off_the_methods_are_coroutines_pytango_runs_in_its_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SWITCH, "0")
    request_thread.request_thread_hooks.cache_clear()
    try:
        assert not request_thread_hooks() and f"{SWITCH}=0" in request_thread_path()

        class Switched(Device):
            @in_request_thread
            def dev_state(self) -> tango.DevState:
                """From a snapshot."""
                return tango.DevState.ON

        wrapped = Switched.dev_state
        assert getattr(wrapped, "__access_wrapped__", False)  # PyTango's own wrapper ...
        inner = wrapped.__wrapped__
        assert inspect.iscoroutinefunction(inner)  # ... around a coroutine function,
        assert not hasattr(inner, "__wrapped__")  # which PyTango sees as one (no sync warning)
        assert inner.__name__ == "dev_state" and inner.__doc__ == "From a snapshot."
    finally:
        monkeypatch.undo()
        request_thread.request_thread_hooks.cache_clear()
    assert request_thread_hooks() is (mark_honoured() and switched_on())
