"""``LimaSimulatorReceiver``: gets its share of the frames and runs the pipeline."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import numpy as np
import tango
import tango.asyncio
from tango import AttrWriteType, Util
from tango.server import attribute, command, device_property

from ..core.lima2 import SOFTWARE_TRIGGER, DeviceState, processing_device_name
from ..core.params import defaults_from_schema
from ..server.pushed_values import require_loop_thread
from . import disk_space
from .base import SimulatorDevice, knob, raise_lima
from .clock import FrameClock
from .frames import FrameGenerator, share
from .pipeline import LegacyPipeline
from .pipelines import CLASSES, ClassPipeline, PipelineFailure
from .processing import PIPELINES
from .schemas import PROCESSING_CLASS, SCHEMAS, proc_params_schema

logger = logging.getLogger(__name__)

DEVICE_LIST_LOCK = threading.Lock()
"""Held while this process creates or deletes a processing device: Tango changes a
class's device list without a lock, and several receivers may share one server. A
receiver keeps the devices it made instead of looking them up by name in that list.

The Tango kernel does not lock that list against the admin device's requests either (an
event subscription looks the devices up by name): a client must not subscribe to a
server's devices while it erases a pipeline there. The conductor subscribes to a new
pipeline's events first, then erases the old pipelines, as lima2-client does."""


class LimaSimulatorReceiver(SimulatorDevice):
    """Receiver of rank ``rank`` among ``nb_receivers`` (the real ones learn it from MPI)."""

    rank = device_property(dtype=int, default_value=0, doc="0-based position in the receiver list")
    nb_receivers = device_property(dtype=int, default_value=1, doc="Number of receivers")
    control_device = device_property(
        dtype=str, default_value="", doc="Control device, followed in software trigger mode"
    )
    PUSHED = ("acq_state", "nb_frames_xferred")

    async def init_device(self) -> None:
        await super().init_device()
        self.proc_schema = proc_params_schema()
        self._proc_params: dict[str, Any] = defaults_from_schema(self.proc_schema)
        self._pipelines: dict[str, str] = {}  # uuid -> processing device name
        self._devices: dict[str, Any] = {}  # uuid -> processing device (no lookup by name: see DEVICE_LIST_LOCK)
        self._current: LegacyPipeline | ClassPipeline | None = None
        self._stop = False
        self._nb_xferred = 0
        self._last_error = ""
        self._drop_finished = False
        self._control: Any = None
        disk_space.WRITERS_PER_DISK = max(disk_space.WRITERS_PER_DISK, self.nb_receivers)

    # -- attributes ----------------------------------------------------------
    @attribute(dtype=str, access=AttrWriteType.READ_WRITE, doc="Processing parameters (JSON)")
    def proc_params(self) -> str:
        return json.dumps(self._proc_params)

    @proc_params.write
    def proc_params(self, value: str) -> None:
        self.require(DeviceState.IDLE, DeviceState.PREPARED, command="write proc_params")
        self._proc_params = self.parse_params(value, _schema_of(value, self.proc_schema), "proc_params")

    @attribute(dtype=int, doc="Frames received by this receiver in this acquisition")
    def nb_frames_xferred(self) -> int:
        return self._nb_xferred

    def _set_xferred(self, n: int) -> None:
        self._nb_xferred = n
        self.pushed.push("nb_frames_xferred", n)

    def pushed_value(self, name: str) -> Any:
        return self._nb_xferred if name == "nb_frames_xferred" else super().pushed_value(name)

    @attribute(dtype=(str,), max_dim_x=1024, doc="UUIDs of the processing pipelines this receiver holds")
    def pipelines(self) -> list[str]:
        return list(self._pipelines)

    @attribute(dtype=str, doc="Last error (JSON {what, errinfo}), empty if none")
    def last_error(self) -> str:
        return self._last_error

    sim_drop_finished_event = knob(
        "_drop_finished", bool, "the next acquisition's processing never reports finished (no event, is_finished false)"
    )

    # -- commands --------------------------------------------------------------
    def _processing_name(self, uuid: str) -> str:
        return processing_device_name(self.get_name().split("/")[0], uuid, self.rank)

    @command(dtype_in=str, doc_in="Acquisition UUID")
    async def Prepare(self, uuid: str) -> None:
        self.maybe_hang()
        self.require(DeviceState.IDLE, DeviceState.PREPARED, command="Prepare")
        if self._prepare_delay:
            await asyncio.sleep(self._prepare_delay)
        self.consume_fail("_fail_prepare", "Prepare")
        if not uuid or "/" in uuid or "*" in uuid:
            raise_lima(f"invalid acquisition uuid {uuid!r}", self.get_name(), "Prepare")
        if uuid in self._pipelines:
            raise_lima(f"pipeline {uuid} exists already", self.get_name(), "Prepare")
        class_name = self._proc_params["class_name"]
        if class_name != PROCESSING_CLASS and class_name not in CLASSES:
            raise_lima(f"unknown processing class {self._proc_params['class_name']!r}", self.get_name(), "Prepare")
        acq, proc = self._acq_params, self._proc_params
        if acq["acq"]["trigger_mode"] == SOFTWARE_TRIGGER and not self.control_device:
            raise_lima("software trigger needs the control_device property", self.get_name(), "Prepare")
        try:
            generator = await asyncio.to_thread(FrameGenerator, acq, self.sensor_width, self.sensor_height)
            make = CLASSES.get(class_name, LegacyPipeline)
            pipeline = await asyncio.to_thread(make, uuid, self.rank, generator, acq, proc)
        except (ValueError, OSError, PipelineFailure) as exc:
            raise_lima(str(exc), self.get_name(), "Prepare")
        name = self._processing_name(uuid)
        PIPELINES[name.lower()] = pipeline
        frame_info = json.dumps(generator.geometry.info())

        def create() -> Any:
            with DEVICE_LIST_LOCK:
                Util.instance().create_device(class_name, name)
                device = Util.instance().get_device_by_name(name)
            Util.instance().get_database().put_device_property(name, {"frame_info": [frame_info]})
            return device

        try:
            device = await asyncio.to_thread(create)
        except tango.DevFailed as exc:
            PIPELINES.pop(name.lower(), None)
            raise_lima(f"cannot create {name}: {exc.args[0].desc}", self.get_name(), "Prepare")
        self._pipelines[uuid] = name
        self._devices[uuid] = device
        self._current = pipeline
        self._clock = FrameClock(acq)
        self._set_xferred(0)
        self.set_acq_state(DeviceState.PREPARED)

    @command
    async def Start(self) -> None:
        self.maybe_hang()
        self.require(DeviceState.PREPARED, command="Start")
        self.consume_fail("_fail_start", "Start")
        assert self._clock is not None and self._current is not None
        if self._task is not None and not self._task.done():
            # the previous run's loop (told to stop by Stop or Reset) ends before a new
            # one starts: one stop flag serves one run at a time
            self._stop = True
            await asyncio.wait({self._task}, timeout=10)
        self._stop = False
        self._clock.start()
        self.set_acq_state(DeviceState.RUNNING)
        self._task = asyncio.create_task(self._run(self._current, self._clock, self._drop_finished))
        self._drop_finished = False

    @command
    async def Stop(self) -> None:
        """End the acquisition early: like a real receiver (and unlike the control), the
        receiver goes back to IDLE, not STOPPED, once its receiving loop has ended."""
        self.maybe_hang()
        if self._acq_state != DeviceState.RUNNING:
            return
        self._stop = True

    @command
    async def Close(self) -> None:
        self.maybe_hang()
        self.require(DeviceState.IDLE, DeviceState.PREPARED, DeviceState.STOPPED, command="Close")
        self.set_acq_state(DeviceState.IDLE)

    @command
    async def Reset(self) -> None:
        self.maybe_hang()
        self._stop = True
        self._last_error = ""
        self.set_acq_state(DeviceState.IDLE)

    @command(dtype_in=str, doc_in="UUID of the pipeline to delete")
    async def erasePipeline(self, uuid: str) -> None:
        name = self._pipelines.get(uuid)
        if name is None:
            raise_lima(f"no pipeline {uuid!r} (have {len(self._pipelines)})", self.get_name(), "erasePipeline")
        if self._current is not None and self._current.uuid == uuid and self._acq_state == DeviceState.RUNNING:
            raise_lima(f"pipeline {uuid} is running", self.get_name(), "erasePipeline")
        del self._pipelines[uuid]
        self._devices.pop(uuid, None)
        if self._current is not None and self._current.uuid == uuid:
            self._current = None
        held = PIPELINES.get(name.lower())
        class_name = held.class_name if held is not None else PROCESSING_CLASS

        def delete() -> None:
            with DEVICE_LIST_LOCK:
                Util.instance().delete_device(class_name, name)

        await asyncio.to_thread(delete)
        PIPELINES.pop(name.lower(), None)

    # -- acquisition -----------------------------------------------------------
    async def _produced(self, clock: FrameClock, known: int) -> int:
        """Frames the detector has produced: own clock, or the control's count (``known``,
        the last count seen, when one read of it fails: a transient error is no reason to
        lose frames; a control that is gone is the conductor's business)."""
        if not clock.software:
            return clock.produced()
        try:
            if self._control is None:
                self._control = await tango.asyncio.DeviceProxy(self.control_device)
            n = int((await self._control.read_attribute("nb_frames_acquired")).value)
        except (tango.DevFailed, TypeError, ValueError) as exc:
            logger.warning("reading the control's frame count: %s", exc)
            return known
        n = max(n, known)
        return n if clock.nb_frames == 0 else min(n, clock.nb_frames)

    async def _run(self, pipeline: LegacyPipeline | ClassPipeline, clock: FrameClock, drop_finished: bool) -> None:
        n_recv = max(1, self.nb_receivers)
        mode = self._acq_params["det"]["dispatch_mode"]
        cursor = 0
        failed = False
        fault = ""  # reported once the pipeline has finished
        try:
            pipeline.activate()
        except PipelineFailure as exc:  # the processing never starts, never reports its end
            pipeline.error = json.dumps({"what": str(exc), "errinfo": {"device": self._processing_name(pipeline.uuid)}})
            self._fault(str(exc))
            return
        try:
            while not self._stop:
                produced = await self._produced(clock, cursor)
                if produced > cursor:
                    mine = share(self.rank, n_recv, mode, cursor, produced)
                    cursor = produced
                    if self._fail_at_frame >= 0 and np.any(mine >= self._fail_at_frame):
                        k = self._fail_at_frame
                        self._fail_at_frame = -1
                        mine = mine[mine < k]
                        failed = True
                    if len(mine):
                        self._set_xferred(self._nb_xferred + len(mine))
                        await asyncio.to_thread(pipeline.process, mine, lambda: self._stop)
                    if failed:
                        fault = f"simulated failure at frame {k} (fault knob)"
                        break
                if clock.nb_frames and cursor >= clock.nb_frames:
                    break
                await asyncio.sleep(0.005 if clock.software else min(0.05, max(0.001, clock.next_frame_in())))
        except Exception as exc:  # a pipeline failure (disk full...) is the processing's error
            logger.exception("pipeline %s failed", pipeline.uuid)
            pipeline.error = json.dumps(
                {"what": f"processing error: {exc}", "errinfo": {"device": self._processing_name(pipeline.uuid)}}
            )
            fault = f"processing error: {exc}"
        try:
            await asyncio.to_thread(pipeline.finish)
        except Exception as exc:
            pipeline.error = json.dumps({"what": f"saving error: {exc}", "errinfo": {}})
        if fault:  # once the files are closed and the counters final, as a receiver that stopped
            self._fault(fault)
        if self._acq_state == DeviceState.RUNNING:
            self.set_acq_state(DeviceState.IDLE)
        if drop_finished:
            pipeline.finished = False  # a processing that never reports its end
        self._push_processing_events(pipeline, drop_finished)

    def _fault(self, what: str) -> None:
        self._last_error = json.dumps({"what": what, "errinfo": {"device": self.get_name()}})
        self.set_acq_state(DeviceState.FAULT)

    def _push_processing_events(self, pipeline: LegacyPipeline | ClassPipeline, drop_finished: bool) -> None:
        name = self._pipelines.get(pipeline.uuid, "")
        device = self._devices.get(pipeline.uuid)
        if device is None or PIPELINES.get(name.lower()) is not pipeline:
            return  # erased, or being deleted (its delete_device forgets the pipeline first)
        require_loop_thread("processing events")
        if pipeline.error:
            device.push_data_ready_event("last_error", 1)
        if not drop_finished:
            device.push_data_ready_event("is_finished", 1)


def _schema_of(value: str, legacy: dict[str, Any]) -> dict[str, Any]:
    """The schema of the class named by the params' ``class_name`` (Legacy when absent or
    not parsable: validation then names the problem)."""
    try:
        name = json.loads(value).get("class_name")
    except (ValueError, AttributeError):
        return legacy
    return SCHEMAS[name]() if name in SCHEMAS and name != PROCESSING_CLASS else legacy
