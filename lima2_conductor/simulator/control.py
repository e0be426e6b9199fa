"""``LimaSimulatorControl``: the simulated Lima2 control device (the detector)."""

from __future__ import annotations

import asyncio
import json

from tango.server import attribute, command, device_property

from ..core.lima2 import ACQ_LIMITS, CORE_VERSION, PIXEL_TYPES, TRIGGER_MODES, DeviceState
from .base import SimulatorDevice, raise_lima
from .clock import FrameClock
from .frames import geometry_from_params

PLUGIN_VERSION = CORE_VERSION


class LimaSimulatorControl(SimulatorDevice):
    """Drives the (simulated) detector: timing, triggers, frame count."""

    receiver_topology = device_property(dtype=str, default_value="round_robin", doc="Frame dispatch of the receivers")
    detector_model = device_property(dtype=str, default_value="Simulator 512", doc="Model string in det_info")

    async def init_device(self) -> None:
        await super().init_device()
        self._uuid = ""

    # -- attributes ----------------------------------------------------------
    @attribute(dtype=int, doc="Frames produced by the detector in this acquisition", read_green_mode=False)
    def nb_frames_acquired(self) -> int:
        """Answered in the request thread from the detector's clock (a C++ device answers
        at once; a hop through this server's event loop would add a delay that no real
        system has). No change events: the count changes with every frame,
        and a push would race with these reads (see :mod:`lima2_conductor.server.pushed_values`)."""
        return self._clock.produced() if self._clock else 0

    @attribute(dtype=str, doc="Detector information (JSON)")
    def det_info(self) -> str:
        return json.dumps(
            {
                "plugin": "Simulator",
                "model": self.detector_model,
                "sn": "SIM-0001",
                "pixel_size": {"x": 75e-6, "y": 75e-6},
                "dimensions": {"x": self.sensor_width, "y": self.sensor_height},
                "pixel_types": list(PIXEL_TYPES),
            }
        )

    @attribute(dtype=str, doc="Detector runtime status (JSON)")
    def det_status(self) -> str:
        return json.dumps({"temperature": 24.5, "humidity": 12.0, "state": self._acq_state.name.lower()})

    @attribute(dtype=str, doc="Detector capabilities (JSON)")
    def det_capabilities(self) -> str:
        return json.dumps(
            {
                "trigger_modes": list(TRIGGER_MODES),
                "expo_time_range": list(ACQ_LIMITS["expo_time"]),
                "latency_time_range": list(ACQ_LIMITS["latency_time"]),
                "pixel_types": list(PIXEL_TYPES),
            }
        )

    @attribute(dtype=str, doc="Detector plugin version")
    def version(self) -> str:
        return PLUGIN_VERSION

    # -- commands --------------------------------------------------------------
    @command(dtype_in=str, doc_in="Acquisition UUID")
    async def Prepare(self, uuid: str) -> None:
        self.maybe_hang()
        self.require(DeviceState.IDLE, DeviceState.PREPARED, command="Prepare")
        if self._prepare_delay:
            await asyncio.sleep(self._prepare_delay)
        self.consume_fail("_fail_prepare", "Prepare")
        try:
            geometry_from_params(self._acq_params, self.sensor_width, self.sensor_height)
        except ValueError as exc:
            raise_lima(str(exc), self.get_name(), "Prepare")
        self._uuid = uuid
        self._clock = FrameClock(self._acq_params)
        self.set_acq_state(DeviceState.PREPARED)

    @command
    async def Start(self) -> None:
        self.maybe_hang()
        self.require(DeviceState.PREPARED, command="Start")
        self.consume_fail("_fail_start", "Start")
        assert self._clock is not None
        self._clock.start()
        self.set_acq_state(DeviceState.RUNNING)
        self._task = asyncio.create_task(self._run())

    @command(cmd_green_mode=False)
    def Trigger(self) -> None:
        """Answered in the request thread, like ``nb_frames_acquired``."""
        self.maybe_hang()
        self.require(DeviceState.RUNNING, command="Trigger")
        assert self._clock is not None
        if not self._clock.software:
            raise_lima(f"Trigger needs trigger_mode 'software', not {self._clock.mode!r}", self.get_name(), "Trigger")
        self._clock.trigger()

    @command
    async def Stop(self) -> None:
        self.maybe_hang()
        if self._acq_state != DeviceState.RUNNING:
            return
        self._end(DeviceState.STOPPED)

    @command
    async def Close(self) -> None:
        self.maybe_hang()
        self.require(DeviceState.IDLE, DeviceState.PREPARED, DeviceState.STOPPED, command="Close")
        self.set_acq_state(DeviceState.IDLE)

    @command
    async def Reset(self) -> None:
        self.maybe_hang()
        if self._acq_state == DeviceState.RUNNING:
            self._end(DeviceState.IDLE)
        self.set_acq_state(DeviceState.IDLE)

    # -- acquisition -----------------------------------------------------------
    def _end(self, state: DeviceState) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None
        if self._clock is not None:
            self._clock.stop()
        self.set_acq_state(state)

    async def _run(self) -> None:
        clock = self._clock
        assert clock is not None
        while True:
            n = clock.produced()
            if self._fail_at_frame >= 0 and n > self._fail_at_frame:
                self._fail_at_frame = -1
                self._end(DeviceState.FAULT)
                return
            if clock.complete():
                self._end(DeviceState.IDLE)
                return
            await asyncio.sleep(min(0.05, max(0.001, clock.next_frame_in())))
