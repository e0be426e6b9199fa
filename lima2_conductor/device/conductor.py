"""``Lima2Conductor``: one Tango device for a control and N receiver devices.

Commands parse, call the core and map errors; attributes are declared from the spec list
in :mod:`.attributes` and read the snapshot the monitor makes every tick (:mod:`.monitor`).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from typing import Any

import numpy
import tango
from tango import DevState, DispLevel, GreenMode
from tango.server import Device, attribute, command, device_property

from ..backend.tango_devices import TangoControl, TangoReceiver, check_database, find_processing
from ..core import lima2
from ..core.devencoded import encode_rows
from ..core.errors import ConductorError, ParamError
from ..core.params import deep_merge, defaults_from_schema, parse_json_object, settings_overrides
from ..core.state import RunState
from ..core.system import AcquisitionSystem
from ..core.topology import make_topology
from ..core.view import ConductorView, snapshot
from .attributes import EVENT_ATTRS, SETTINGS, namespace
from .errors import tango_errors
from .monitor import Monitor

logger = logging.getLogger(__name__)
SpecAttributes = type("SpecAttributes", (), namespace())


class Lima2Conductor(SpecAttributes, Device):  # type: ignore[misc, valid-type]
    """Conducts a distributed Lima2 acquisition as if it were one detector."""

    green_mode = GreenMode.Asyncio

    control_device = device_property(dtype=str, doc="Lima2 control device")
    receiver_devices = device_property(dtype=(str,), doc="Lima2 receiver devices, in rank order")
    topology = device_property(dtype=str, default_value="round_robin", doc="single | round_robin | dynamic")
    round_robin_ordering = device_property(
        dtype=(int,), default_value=[], doc="Receiver order of the round robin (default 0..N-1)"
    )
    device_timeout_ms = device_property(dtype=int, default_value=3000, doc="Deadline of every call to a Lima2 device")
    master_file_dir = device_property(dtype=str, default_value="", doc="Default saving directory")
    progress_event_period_ms = device_property(
        dtype=int, default_value=40, doc="Period of the device poll and of progress events while running (ms)"
    )
    image_period_ms = device_property(
        dtype=int, default_value=500, doc="Minimum period of last_image refreshes while running (ms)"
    )
    watchdog_s = device_property(
        dtype=float, default_value=30.0, doc="A run with no progress this long after the acquisition ended fails (s)"
    )

    # -- life cycle ------------------------------------------------------------------
    async def init_device(self) -> None:
        """Never raises: a configuration error is FAULT with a Status saying why."""
        await super().init_device()
        self.set_state(DevState.INIT)
        self.set_status("Initialising: observing the Lima2 devices")
        self.system: AcquisitionSystem | None = None
        self.view = ConductorView(tango_state="INIT", status="Initialising")
        self.settings: dict[str, Any] = {s.name: s.default for s in SETTINGS if not s.alias_of}
        if self.master_file_dir:
            self.settings["saving_directory"] = self.master_file_dir
        self.image = numpy.zeros((1, 1), dtype=numpy.float32)
        self.image_idx = -1
        self.init_error = ""
        self.monitor: Monitor | None = None
        for name in ("State", "Status", *EVENT_ATTRS, "last_image", "last_image_ready"):
            self.set_change_event(name, True, False)
        self._initialise_write_values()
        try:
            self.system = self.make_system()
            self.monitor = Monitor(self)
            self.monitor.start()
        except Exception as exc:  # init_device never raises: FAULT and a Status
            self.init_error = f"Initialisation failed: {exc}"
            logger.error("init failed: %s", traceback.format_exc())
            self.set_state(DevState.FAULT)
            self.set_status(self.init_error)

    def make_system(self) -> AcquisitionSystem:
        """The core over Tango backends (tests replace this to run the device on fakes)."""
        if not self.control_device or not self.receiver_devices:
            raise ParamError("properties control_device and receiver_devices must be set")
        receivers = list(self.receiver_devices)
        topo = make_topology(self.topology, len(receivers), list(self.round_robin_ordering) or None)
        timeout = self.device_timeout_ms
        return AcquisitionSystem(
            control=TangoControl(self.control_device, timeout),
            receivers=[TangoReceiver(r, timeout) for r in receivers],
            topology=topo,
            find_processing=lambda uid, n: find_processing(uid, n, timeout),
            timeout_s=timeout / 1000,
            watchdog_s=self.watchdog_s,
            check_database=check_database,
        )

    async def delete_device(self) -> None:
        if self.monitor is not None:
            await self.monitor.stop()

    def _initialise_write_values(self) -> None:
        """Memorized settings show their current value as the set point (not "not initialised")."""
        attrs = self.get_device_attr()
        for setting in SETTINGS:
            try:
                attrs.get_w_attr_by_name(setting.name).set_write_value(self.settings[setting.key])
            except tango.DevFailed:
                logger.debug("no write value for %s", setting.name)

    @property
    def core(self) -> AcquisitionSystem:
        if self.system is None:
            raise ParamError(f"the conductor is not configured: {self.init_error}")
        return self.system

    # -- state ------------------------------------------------------------------------
    def dev_state(self) -> DevState:
        """From the latest snapshot (never a fan-out); INIT until the devices were observed once."""
        if self.system is None or self.monitor is None or not self.monitor.observed:
            return self.get_state()
        return DevState.names[self.view.tango_state]

    def dev_status(self) -> str:
        if self.system is None or self.monitor is None or not self.monitor.observed:
            return self.get_status()
        return self.view.status

    def refresh_view(self) -> None:
        """A new snapshot of the core, published as State/Status and change events."""
        self.view = snapshot(self.core)
        if self.monitor is not None and self.monitor.observed:
            self.set_state(DevState.names[self.view.tango_state])
            self.set_status(self.view.status)
            self.monitor.publish()

    async def _after_command(self) -> None:
        """Observe the devices now, so that State changes before the command returns."""
        await self.core.observer.poll_states()
        self.refresh_view()

    def change_setting(self, name: str, value: Any, problem: str) -> None:
        """Store a setting; ``problem`` (if any) is a PARAM_ERROR and nothing changes."""
        if problem:
            tango.Except.throw_exception("PARAM_ERROR", f"{self.get_name()}: {name} {problem}", name)
        if self.system is not None and self.system.run_state in (RunState.PREPARING, RunState.STARTING):
            tango.Except.throw_exception(
                "OPERATION_NOT_ALLOWED",
                f"{self.get_name()}: {name} cannot change while {self.system.run_state.value}",
                name,
            )
        self.settings[name] = value
        logger.info("%s = %r", name, value)
        if self.monitor is not None:
            self.monitor.publish_settings()

    # -- commands ------------------------------------------------------------------------
    @command(
        dtype_in=str,
        doc_in='Prepares an acquisition. JSON {"control": {...}, "receiver": {...}, "processing": {...}}, each '
        'optional and partial, deep-merged over the defaults and the acq_*/saving_* settings; "" = defaults. '
        "Allowed when no acquisition runs (IDLE, PREPARED, DONE, STOPPED).",
        dtype_out=str,
        doc_out="Acquisition UUID",
    )
    @tango_errors
    async def Prepare(self, params_json: str) -> str:
        s = self.core
        s.check("Prepare")
        try:
            user = parse_json_object(params_json, "params") if params_json.strip() else {}
        except ConductorError as exc:
            s.record_error(f"Prepare refused: {exc}")
            self.refresh_view()
            raise
        try:
            return await s.prepare(user, settings_overrides(self.settings))
        finally:
            await self._after_command()

    @command(doc_in="Starts the prepared acquisition (receivers, then the control). Allowed in PREPARED.")
    @tango_errors
    async def Start(self) -> None:
        try:
            await self.core.start()
        finally:
            await self._after_command()

    @command(doc_in="Software trigger: one more frame (trigger mode SOFTWARE). Allowed while RUNNING.")
    @tango_errors
    async def Trigger(self) -> None:
        await self.core.trigger()
        if self.monitor is not None:
            self.monitor.follow_trigger()

    @command(
        doc_in="Stops the running acquisition (or cancels a Prepare); the run ends STOPPED. "
        "Always allowed: when nothing runs it only stops devices still running."
    )
    @tango_errors
    async def Stop(self) -> None:
        try:
            await self.core.stop()
        finally:
            await self._after_command()

    @command(
        doc_in="Releases the prepared acquisition: the control closes, the receivers reset. "
        "Allowed when no acquisition runs."
    )
    @tango_errors
    async def Close(self) -> None:
        try:
            await self.core.close()
        finally:
            await self._after_command()

    @command(
        doc_in="Resets every device and forgets the run (clears FAULT and errors). "
        "Allowed when no acquisition runs, and in FAULT."
    )
    @tango_errors
    async def Reset(self) -> None:
        try:
            await self.core.reset()
        finally:
            await self._after_command()

    @command(
        dtype_in=int,
        doc_in="Where a frame is. Global frame index, -1 = the newest processed frame",
        dtype_out=str,
        doc_out="JSON: frame_idx, source, receiver, processing_device, command, local_idx, "
        "hdf5 {file, dataset, index} or null",
    )
    @tango_errors
    async def Lookup(self, frame_idx: int) -> str:
        _check_index(frame_idx)
        return json.dumps(await self.core.lookup(int(frame_idx)))

    @command(
        dtype_in=tango.DevVarLongStringArray,
        doc_in="One frame. [[frame_idx], [source]]: source from frame_channels (default 'frame'), "
        "frame_idx -1 = the newest",
        dtype_out=tango.DevEncoded,
        doc_out="The frame as the processing device encodes it (Lima2 DATA_ARRAY for dense frames)",
    )
    @tango_errors
    async def GetFrame(self, argin: Any) -> tuple[str, bytes]:
        ints, strs = _long_string(argin, 1, "GetFrame")
        _check_index(ints[0])
        return await self.core.get_frame(ints[0], strs[0] if strs else "frame")

    @command(
        dtype_in=tango.DevVarLongStringArray,
        doc_in="Reduced data rows. [[channel_idx, from_frame, max_rows], [name]] (name from "
        "reduced_data_channels; max_rows 0 = all available)",
        dtype_out=tango.DevEncoded,
        doc_out="STRUCTURED_ARRAY rows in global frame order",
    )
    @tango_errors
    async def GetReducedData(self, argin: Any) -> tuple[str, bytes]:
        ints, strs = _long_string(argin, 3, "GetReducedData")
        if not strs:
            raise ParamError("GetReducedData needs the channel name, e.g. [[0, 0, 0], ['roi_stats']]")
        rows = self.core.current_run().pipeline.reduced(strs[0], ints[0], ints[1], ints[2])
        return encode_rows(rows)

    @command(dtype_out=str, doc_out="Default params of the next Prepare (JSON), settings included")
    @tango_errors
    async def DefaultParams(self) -> str:
        s = self.core
        spec = _spec("")
        o = settings_overrides(self.settings)
        ctl_schema = await s.control.acq_schema()
        proc_schema = await s.receivers[0].proc_schema(spec.class_name)
        return json.dumps(
            {
                "control": deep_merge(defaults_from_schema(ctl_schema), o["control"]),
                "processing": deep_merge(defaults_from_schema(proc_schema), o["processing"]),
            }
        )

    @command(dtype_out=str, doc_out="JSON schemas of the params (control, receiver, processing)")
    @tango_errors
    async def ParamsSchema(self) -> str:
        s = self.core
        spec = _spec("")
        return json.dumps(
            {
                "control": await s.control.acq_schema(),
                "receiver": await s.receivers[0].acq_schema(),
                "processing": await s.receivers[0].proc_schema(spec.class_name),
            }
        )

    @command(
        dtype_out=str,
        doc_out="Diagnostics (JSON): devices, states, run, timings, error history",
        display_level=DispLevel.EXPERT,
    )
    @tango_errors
    async def GetInfo(self) -> str:
        s = self.core
        run = s.run
        started = run.started_at if run else 0.0
        return json.dumps(
            {
                "control": s.control.name,
                "receivers": [r.name for r in s.receivers],
                "processing": [p.name for p in run.processing] if run else [],
                "topology": s.topology.name,
                "device_states": self.view.device_states,
                "run_state": s.run_state.value,
                "uuid": s.uuid,
                "adopted": bool(run and run.adopted),
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)) if started else "",
                "timings": {**s.timings, **(run.timings if run else {})},
                "monitor": self.monitor.stats() if self.monitor else {},
                "errors": s.errors,
                "history": s.history,
            }
        )

    # -- the live image ----------------------------------------------------------------
    @attribute(
        dtype=((numpy.float32,),),
        max_dim_x=8192,
        max_dim_y=8192,
        label="Last image",
        doc="Newest processed frame (channel 0), for live views; refreshed at most every image_period_ms "
        "while running, and once at the end of the run",
    )
    async def last_image(self) -> Any:
        return self.image

    @attribute(dtype=int, format="%d", label="Last image ready", doc="Global index of last_image, -1 if none")
    async def last_image_ready(self) -> int:
        return self.image_idx


def _check_index(frame_idx: int) -> None:
    if frame_idx < -1:
        raise ParamError(f"frame index {frame_idx} must be >= 0, or -1 for the newest")


def _spec(class_name: str) -> lima2.PipelineSpec:
    try:
        return lima2.pipeline(class_name or lima2.DEFAULT_PIPELINE)
    except KeyError as exc:
        raise ParamError(str(exc.args[0])) from None


def _long_string(argin: Any, nb_ints: int, command: str) -> tuple[list[int], list[str]]:
    """Check a DevVarLongStringArray argument: ``nb_ints`` integers and strings."""
    try:
        ints, strs = [int(v) for v in argin[0]], [str(v) for v in argin[1]]
    except (TypeError, ValueError, IndexError):
        raise ParamError(f"{command} takes [[{nb_ints} integer(s)], [string(s)]]") from None
    if len(ints) != nb_ints:
        raise ParamError(f"{command} takes {nb_ints} integer(s), got {len(ints)}")
    return ints, strs
