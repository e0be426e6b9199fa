"""What the simulated control and receiver devices share: state, errors, fault knobs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, NoReturn

import tango
from tango import AttrWriteType, DispLevel, GreenMode
from tango.server import Device, attribute, device_property

from ..core.errors import ParamError
from ..core.lima2 import LIMA_ERROR_REASON, DeviceState, lima_error
from ..core.params import defaults_from_schema, parse_json_object, validate
from ..server.pushed_values import PushedValues
from ..server.request_thread import RequestThreadHooks
from .clock import FrameClock
from .schemas import acq_params_schema

LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"]
logger = logging.getLogger(__name__)


def raise_lima(what: str, device: str, origin: str, **info: Any) -> NoReturn:
    """Raise a ``DevFailed`` as the Lima2 C++ devices do: reason ``LIMA_Exception``,
    ``desc`` a JSON object ``{"what", "errinfo"}``."""
    tango.Except.throw_exception(LIMA_ERROR_REASON, lima_error(what, device=device, **info), origin)


def knob(field: str, dtype: type, doc: str, unit: str = "") -> attribute:
    """An expert read/write attribute that sets the fault-injection field ``field``."""

    async def fget(device: Any) -> Any:
        return getattr(device, field)

    async def fset(device: Any, value: Any) -> None:
        value = dtype(value)
        setattr(device, field, max(0.0, value) if dtype is float else value)

    extra: dict[str, Any] = {"unit": unit, "format": "%.3f"} if dtype is float else {}
    return attribute(
        dtype=dtype,
        access=AttrWriteType.READ_WRITE,
        display_level=DispLevel.EXPERT,
        fget=fget,
        fset=fset,
        doc=f"Fault knob: {doc}",
        **extra,
    )


class SimulatorDevice(RequestThreadHooks, Device):
    """Base of the simulated control and receiver devices."""

    green_mode = GreenMode.Asyncio
    PUSHED: tuple[str, ...] = ("acq_state",)
    """Attributes pushed with their values (change events); clients read them from the
    polling buffer (see :mod:`lima2_conductor.server.pushed_values`)."""

    sensor_width = device_property(dtype=int, default_value=512, doc="Simulated sensor width (pixels)")
    sensor_height = device_property(dtype=int, default_value=512, doc="Simulated sensor height (pixels)")

    async def init_device(self) -> None:
        await super().init_device()
        self._acq_state = DeviceState.IDLE
        self._log_level = 2
        self._fail_prepare = False
        self._fail_start = False
        self._fail_at_frame = -1
        self._prepare_delay = 0.0
        self._hang = 0.0
        self.acq_schema = acq_params_schema(self.sensor_width, self.sensor_height)
        self._acq_params: dict[str, Any] = defaults_from_schema(self.acq_schema)
        self._clock: FrameClock | None = None
        self._task: asyncio.Task[None] | None = None
        self.pushed = PushedValues(self, self.PUSHED)
        for name in self.PUSHED:
            self.set_change_event(name, True, False)
        self._buffer_task = asyncio.ensure_future(self._serve_pushed_from_buffer())
        self.set_state(tango.DevState.ON)
        self.set_status("IDLE")

    async def _serve_pushed_from_buffer(self) -> None:
        """Once the server has started (Tango refuses polling changes before)."""
        while not self.pushed.serve_from_buffer(self.pushed_value):
            await asyncio.sleep(0.05)

    def pushed_value(self, name: str) -> Any:
        """The current value of a pushed attribute."""
        if name == "acq_state":
            return int(self._acq_state)
        raise KeyError(name)

    async def delete_device(self) -> None:
        self._buffer_task.cancel()
        if self._task is not None:
            self._task.cancel()

    @attribute(dtype=str, access=AttrWriteType.READ_WRITE, doc="Acquisition parameters (JSON, times in us)")
    def acq_params(self) -> str:
        return json.dumps(self._acq_params)

    @acq_params.write
    def acq_params(self, value: str) -> None:
        self.require(DeviceState.IDLE, DeviceState.PREPARED, command="write acq_params")
        self._acq_params = self.parse_params(value, self.acq_schema, "acq_params")

    # -- state -------------------------------------------------------------
    @attribute(dtype=int, doc="Lima2 acq_state: IDLE=0 PREPARED=1 RUNNING=2 STOPPED=3 FAULT=4 TERMINATE=5")
    def acq_state(self) -> int:
        return int(self._acq_state)

    def set_acq_state(self, state: DeviceState) -> None:
        """Change ``acq_state`` and push a change event (call from the loop thread)."""
        if state == self._acq_state:
            return
        self._acq_state = state
        self.set_status(state.name)
        self.set_state(tango.DevState.FAULT if state == DeviceState.FAULT else tango.DevState.ON)
        self.pushed.push("acq_state", int(state))

    def require(self, *states: DeviceState, command: str) -> None:
        if self._acq_state not in states:
            allowed = " or ".join(s.name for s in states)
            raise_lima(
                f"{command} is not allowed in state {self._acq_state.name} (needs {allowed})", self.get_name(), command
            )

    # -- params ------------------------------------------------------------
    def parse_params(self, value: str, schema: dict[str, Any], what: str) -> dict[str, Any]:
        """Parse and validate a JSON params write; Lima-style error naming the field."""
        try:
            params = parse_json_object(value, what)
            validate(params, schema, what)
        except ParamError as exc:
            raise_lima(exc.message, self.get_name(), f"write {what}")
        return params

    # -- log level -----------------------------------------------------------
    @attribute(dtype=tango.DevEnum, enum_labels=LOG_LEVELS, access=AttrWriteType.READ_WRITE, doc="Server log level")
    def log_level(self) -> int:
        return self._log_level

    @log_level.write
    def log_level(self, value: int) -> None:
        self._log_level = int(value)

    # -- fault knobs (expert) ----------------------------------------------------
    sim_fail_prepare = knob("_fail_prepare", bool, "the next Prepare fails")
    sim_fail_start = knob("_fail_start", bool, "the next Start fails")
    sim_fail_at_frame = knob("_fail_at_frame", int, "go FAULT when reaching this global frame index (-1: never)")
    sim_prepare_delay = knob("_prepare_delay", float, "every Prepare takes this much longer", unit="s")
    sim_hang = knob("_hang", float, "the next command blocks the whole server this long (a hung process)", unit="s")

    def maybe_hang(self) -> None:
        """Block the server's event loop on purpose: the hang knob simulates a hung process."""
        if self._hang > 0:
            duration, self._hang = self._hang, 0.0
            time.sleep(duration)

    def consume_fail(self, knob: str, command: str) -> None:
        if getattr(self, knob):
            setattr(self, knob, False)
            raise_lima(f"simulated {command} failure (fault knob)", self.get_name(), command)
