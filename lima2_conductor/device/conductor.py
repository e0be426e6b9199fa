"""``Lima2Conductor``: one Tango device for a control and N receiver devices.

Each method is a few lines: parse, call the core, map errors. Reads are served from
values the monitor task caches; events are pushed from the event loop only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from typing import Any

import numpy
import tango
from tango import AttrWriteType, DevState, DispLevel, GreenMode
from tango.server import Device, attribute, command, device_property

from ..backend.tango_devices import TangoControl, TangoReceiver, find_processing
from ..core.devencoded import decode_frame, encode_rows
from ..core.errors import ParamError
from ..core.params import defaults_from_schema, parse_json_object
from ..core.pipeline import FRAME_SOURCES
from ..core.state import DeviceState, RunState, SystemState, tango_state_name
from ..core.system import PROCESSING_CLASS, AcquisitionSystem
from ..core.topology import make_topology
from .errors import tango_errors

logger = logging.getLogger(__name__)
TRIGGER_MODES = ["internal", "software", "external", "gate"]
PROGRESS_ATTRS = (
    "nb_frames_acquired",
    "nb_frames_xferred",
    "nb_frames_processed",
    "nb_frames_saved",
    "nb_frames_ready",
)


class Lima2Conductor(Device):
    """Conducts a distributed Lima2 acquisition as if it were one detector."""

    green_mode = GreenMode.Asyncio

    control_device = device_property(dtype=str, doc="Lima2 control device")
    receiver_devices = device_property(dtype=(str,), doc="Lima2 receiver devices, in rank order")
    topology = device_property(dtype=str, default_value="round_robin", doc="single | round_robin | dynamic")
    round_robin_ordering = device_property(
        dtype=(int,), default_value=[], doc="Receiver order of the round robin (default 0..N-1)"
    )
    device_timeout_ms = device_property(dtype=int, default_value=3000, doc="Deadline of every call to a Lima2 device")
    master_file_dir = device_property(dtype=str, default_value="", doc="Default directory for saving")
    progress_event_period_ms = device_property(dtype=int, default_value=40, doc="Minimum period of progress events")
    image_period_ms = device_property(
        dtype=int, default_value=500, doc="Minimum period of last_image refreshes while running"
    )
    watchdog_s = device_property(
        dtype=float, default_value=30.0, doc="A run with no progress this long after the acquisition ended fails"
    )

    # -- life cycle ------------------------------------------------------------
    async def init_device(self) -> None:
        await super().init_device()
        self.set_state(DevState.INIT)
        self.set_status("Initialising")
        self.system: AcquisitionSystem | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._pushed: dict[str, Any] = {}
        self._det: dict[str, dict[str, Any]] = {"det_info": {}, "det_status": {}, "det_capabilities": {}}
        self._det_read_at = 0.0
        self._init_error = ""
        self._observed = False
        self._last_image = numpy.zeros((1, 1), dtype=numpy.float32)
        self._last_image_idx = -1
        self._image_at = 0.0
        self._conv: dict[str, Any] = {
            "acq_nb_frames": 10,
            "acq_expo_time": 0.001,
            "acq_latency_time": 0.0,
            "acq_trigger_mode": 0,
            "saving_enabled": False,
            "saving_directory": self.master_file_dir or "/tmp",
            "saving_prefix": "lima2",
        }
        for name in (
            "State",
            "acq_state",
            "run_state",
            "running",
            "failed",
            "frame_rate",
            "progress_counters",
            "device_states",
            *PROGRESS_ATTRS,
        ):
            self.set_change_event(name, True, False)
        try:
            if not self.control_device or not self.receiver_devices:
                raise ParamError("properties control_device and receiver_devices must be set")
            receivers = list(self.receiver_devices)
            topo = make_topology(self.topology, len(receivers), list(self.round_robin_ordering) or None)
            timeout = self.device_timeout_ms
            self.system = AcquisitionSystem(
                control=TangoControl(self.control_device, timeout),
                receivers=[TangoReceiver(r, timeout) for r in receivers],
                topology=topo,
                find_processing=lambda uid, n: find_processing(uid, n, timeout),
                timeout_s=timeout / 1000,
                watchdog_s=self.watchdog_s,
            )
            self._monitor = asyncio.ensure_future(self._monitor_loop())
        except Exception as exc:  # init_device never raises: FAULT and a Status
            self._init_error = str(exc)
            logger.error("init failed: %s", traceback.format_exc())
            self.set_state(DevState.FAULT)
            self.set_status(f"Initialisation failed: {exc}")

    async def delete_device(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()

    def sys(self) -> AcquisitionSystem:
        if self.system is None:
            raise ParamError(f"the conductor is not configured: {self._init_error}")
        return self.system

    # -- monitoring (the only place that talks to devices periodically) ----------
    async def _monitor_loop(self) -> None:
        assert self.system is not None
        first = True
        while True:
            t0 = time.monotonic()
            try:
                before_offline = set(self.system.offline_devices())
                await self.system.poll()
                control_back = (
                    self.system.control.name in before_offline
                    and self.system.device_states[self.system.control.name] != DeviceState.OFFLINE
                )
                if first or control_back or t0 - self._det_read_at > 1.0:
                    await self._refresh_detector(full=first or control_back)
                first = False
                self._observed = True
                if self.system.running and t0 - self._image_at > self.image_period_ms / 1000:
                    await self._refresh_image()
                self._publish()
            except asyncio.CancelledError:
                raise
            except Exception:  # the monitor never dies
                logger.error("monitor tick failed: %s", traceback.format_exc())
            period = self.progress_event_period_ms / 1000 if self.system.running else 0.1
            await asyncio.sleep(max(0.01, period - (time.monotonic() - t0)))

    async def _refresh_image(self) -> None:
        """Fetch the newest processed frame for ``last_image`` (bounded rate)."""
        assert self.system is not None
        self._image_at = time.monotonic()
        if self.system.progress.nb_frames_processed == 0:
            return
        try:
            frame, idx = decode_frame(await self.system.get_frame(-1))
        except Exception as exc:  # noqa: BLE001 - a live view is best effort
            logger.debug("last_image: %s", exc)
            return
        if idx != self._last_image_idx:
            self._last_image = frame[0].astype(numpy.float32)
            self._last_image_idx = int(idx)
            self.push_change_event("last_image", self._last_image)
            self.push_change_event("last_image_ready", self._last_image_idx)

    async def _refresh_detector(self, full: bool) -> None:
        assert self.system is not None
        ctl = self.system.control
        names = ("det_info", "det_capabilities", "det_status") if full else ("det_status",)
        for name in names:
            try:
                self._det[name] = await asyncio.wait_for(getattr(ctl, name)(), self.system.poll_timeout_s)
            except Exception:  # noqa: BLE001 - keep the cached value
                pass
        self._det_read_at = time.monotonic()

    def _current_state(self) -> DevState:
        s = self.sys()
        return DevState.names[tango_state_name(s.system_state, s.run_state)]

    def dev_state(self) -> DevState:
        """State from the cached device states and run state (never a fan-out);
        INIT until the devices were observed once."""
        if self.system is None or not self._observed:
            return self.get_state()
        return self._current_state()

    def dev_status(self) -> str:
        if self.system is None or not self._observed:
            return self.get_status()
        return self._status_text()

    def _push(self, name: str, value: Any) -> None:
        if self._pushed.get(name, object()) != value:
            self._pushed[name] = value
            if name == "State":
                self.push_change_event("State")
            else:
                self.push_change_event(name, value)

    def _publish(self) -> None:
        s = self.sys()
        state = self._current_state()
        self.set_state(state)
        self.set_status(self._status_text())
        self._push("State", state)
        self._push("acq_state", int(s.system_state))
        self._push("run_state", s.run_state.value)
        self._push("running", s.running)
        self._push("failed", s.failed)
        self._push("device_states", self._device_states_json())
        p = s.progress
        for name in PROGRESS_ATTRS:
            self._push(name, int(getattr(p, name)))
        self._push("frame_rate", float(round(p.frame_rate, 3)))
        self._push("reduced_data_ready", self._reduced_ready())
        self._push("progress_counters", json.dumps(p.counters, sort_keys=True))

    async def _refresh(self) -> None:
        """After a command: observe the devices now, so State changes before it returns."""
        await self.sys().poll_states()
        self._publish()

    def _device_states_json(self) -> str:
        return json.dumps({n: st.name for n, st in self.sys().device_states.items()})

    def _status_text(self) -> str:
        s = self.sys()
        lines = [f"System {s.system_state.name}, run {s.run_state.value}" + (f" ({s.uuid})" if s.uuid else "")]
        offline = s.offline_devices()
        if offline:
            lines.append("Offline: " + ", ".join(offline))
        odd = [
            f"{n} {st.name}" for n, st in s.device_states.items() if st in (DeviceState.FAULT, DeviceState.TERMINATE)
        ]
        if odd:
            lines.append("Faulty: " + ", ".join(odd))
        if s.errors:
            lines.append(f"First error: {s.errors[0]}")
        return "\n".join(lines)

    # -- commands ------------------------------------------------------------------
    def _overrides(self) -> dict[str, Any]:
        c = self._conv
        return {
            "control": {
                "acq": {
                    "nb_frames": int(c["acq_nb_frames"]),
                    "expo_time": round(c["acq_expo_time"] * 1e6),
                    "latency_time": round(c["acq_latency_time"] * 1e6),
                    "trigger_mode": TRIGGER_MODES[c["acq_trigger_mode"]],
                }
            },
            "processing": {
                "saving": {
                    "enabled": c["saving_enabled"],
                    "base_path": c["saving_directory"],
                    "filename_prefix": c["saving_prefix"],
                }
            },
        }

    @command(
        dtype_in=str,
        doc_in='JSON {"control": {...}, "receiver": {...}, "processing": {...}}, each optional and partial; "" = defaults',
        dtype_out=str,
        doc_out="Acquisition UUID",
    )
    @tango_errors
    async def Prepare(self, params_json: str) -> str:
        s = self.sys()
        s.check("Prepare")
        user = parse_json_object(params_json, "params") if params_json.strip() else {}
        uid = await s.prepare(user, self._overrides())
        await self._refresh()
        return uid

    @command
    @tango_errors
    async def Start(self) -> None:
        await self.sys().start()
        await self._refresh()

    @command
    @tango_errors
    async def Trigger(self) -> None:
        await self.sys().trigger()

    @command
    @tango_errors
    async def Stop(self) -> None:
        await self.sys().stop()
        await self._refresh()

    @command
    @tango_errors
    async def Close(self) -> None:
        await self.sys().close()
        await self._refresh()

    @command
    @tango_errors
    async def Reset(self) -> None:
        try:
            await self.sys().reset()
        finally:
            await self._refresh()

    @command(
        dtype_in=int,
        doc_in="Global frame index, -1 = the latest",
        dtype_out=str,
        doc_out="JSON: frame_idx, receiver, processing_device, command, local_idx, hdf5 {file, dataset, index} or null",
    )
    @tango_errors
    async def Lookup(self, frame_idx: int) -> str:
        if frame_idx < -1:
            raise ParamError(f"frame index {frame_idx} must be >= 0, or -1 for the latest")
        return json.dumps(await self.sys().lookup(int(frame_idx)))

    @command(
        dtype_in=tango.DevVarLongStringArray,
        doc_in="[[frame_idx], [source]] (source 'frame' or 'input_frame'; frame_idx -1 = the latest)",
        dtype_out=tango.DevEncoded,
        doc_out="Lima2 DATA_ARRAY frame",
    )
    @tango_errors
    async def GetFrame(self, argin: Any) -> tuple[str, bytes]:
        ints, strs = _long_string(argin, 1, "GetFrame")
        source = strs[0] if strs else "frame"
        if ints[0] < -1:
            raise ParamError(f"frame index {ints[0]} must be >= 0, or -1 for the latest")
        return await self.sys().get_frame(ints[0], source)

    @command(
        dtype_in=tango.DevVarLongStringArray,
        doc_in="[[channel_idx, from_frame, max_rows], [name]] (max_rows 0 = all available)",
        dtype_out=tango.DevEncoded,
        doc_out="STRUCTURED_ARRAY rows in global frame order",
    )
    @tango_errors
    async def GetReducedData(self, argin: Any) -> tuple[str, bytes]:
        ints, strs = _long_string(argin, 3, "GetReducedData")
        if not strs:
            raise ParamError("GetReducedData needs the channel name, e.g. [[0, 0, 0], ['roi_stats']]")
        rows = self.sys().current_pipeline().reduced(strs[0], ints[0], ints[1], ints[2])
        return encode_rows(rows)

    @command(dtype_out=str, doc_out="Default params of the next Prepare (JSON)")
    @tango_errors
    async def DefaultParams(self) -> str:
        s = self.sys()
        ctl_schema = await s.control.acq_schema()
        proc_schema = await s.receivers[0].proc_schema(PROCESSING_CLASS)
        from ..core.params import deep_merge

        o = self._overrides()
        return json.dumps(
            {
                "control": deep_merge(defaults_from_schema(ctl_schema), o["control"]),
                "processing": deep_merge(defaults_from_schema(proc_schema), o["processing"]),
            }
        )

    @command(dtype_out=str, doc_out="JSON schemas of the params (control, receiver, processing)")
    @tango_errors
    async def ParamsSchema(self) -> str:
        s = self.sys()
        return json.dumps(
            {
                "control": await s.control.acq_schema(),
                "receiver": await s.receivers[0].acq_schema(),
                "processing": await s.receivers[0].proc_schema(PROCESSING_CLASS),
            }
        )

    @command(
        dtype_out=str,
        doc_out="Diagnostics (JSON): devices, states, timings, error history",
        display_level=DispLevel.EXPERT,
    )
    @tango_errors
    async def GetInfo(self) -> str:
        s = self.sys()
        return json.dumps(
            {
                "control": s.control.name,
                "receivers": [r.name for r in s.receivers],
                "processing": [p.name for p in s.processing],
                "topology": s.topology.name,
                "device_states": {n: st.name for n, st in s.device_states.items()},
                "run_state": s.run_state.value,
                "uuid": s.uuid,
                "timings": s.timings,
                "errors": s.errors,
                "history": s.history,
            }
        )

    # -- state attributes ----------------------------------------------------------
    @attribute(
        dtype=tango.DevEnum,
        enum_labels=[st.name for st in SystemState],
        doc="System state derived from the devices' acq_state",
    )
    def acq_state(self) -> int:
        return int(self.system.system_state) if self.system else int(SystemState.UNKNOWN)

    @attribute(
        dtype=str,
        doc="The conductor's run state (IDLE, PREPARING, PREPARED, RUNNING, WAITING_FOR_PROC, DONE, STOPPED, FAULT...)",
    )
    def run_state(self) -> str:
        return self.system.run_state.value if self.system else RunState.FAULT.value

    @attribute(dtype=bool, doc="True while an acquisition runs")
    def running(self) -> bool:
        return bool(self.system and self.system.running)

    @attribute(dtype=bool, doc="True when the current run failed")
    def failed(self) -> bool:
        return bool(self.system and self.system.failed)

    @attribute(dtype=str, doc="UUID of the current acquisition, empty if none")
    def acq_uuid(self) -> str:
        return self.system.uuid if self.system else ""

    @attribute(dtype=str, doc="Last error, empty if none")
    def last_error(self) -> str:
        return self.system.last_error if self.system else self._init_error

    @attribute(dtype=(str,), max_dim_x=64, doc="Errors of the current run, oldest first")
    def errors(self) -> list[str]:
        return list(self.system.errors) if self.system else [self._init_error]

    @attribute(dtype=str, doc="JSON: device name -> acq_state name (OFFLINE if unreachable)")
    def device_states(self) -> str:
        return self._device_states_json() if self.system else "{}"

    # -- progress attributes ---------------------------------------------------------
    def _p(self, name: str) -> int:
        return int(getattr(self.system.progress, name)) if self.system else 0

    @attribute(dtype=int, format="%d", doc="Frames requested (0 = endless)")
    def nb_frames(self) -> int:
        return self._p("nb_frames")

    @attribute(dtype=int, format="%d", doc="Frames acquired by the detector (control)")
    def nb_frames_acquired(self) -> int:
        return self._p("nb_frames_acquired")

    @attribute(dtype=int, format="%d", doc="Frames transferred, summed over receivers")
    def nb_frames_xferred(self) -> int:
        return self._p("nb_frames_xferred")

    @attribute(dtype=int, format="%d", doc="Frames processed, summed over receivers")
    def nb_frames_processed(self) -> int:
        return self._p("nb_frames_processed")

    @attribute(dtype=int, format="%d", doc="Frames saved, summed over receivers")
    def nb_frames_saved(self) -> int:
        return self._p("nb_frames_saved")

    @attribute(dtype=int, format="%d", doc="Length of the contiguous prefix of processed frames (global order)")
    def nb_frames_ready(self) -> int:
        return self._p("nb_frames_ready")

    @attribute(dtype=str, doc="JSON: every counter with sum, min, max and per-receiver values")
    def progress_counters(self) -> str:
        return json.dumps(self.system.progress.counters, sort_keys=True) if self.system else "{}"

    @attribute(dtype=float, unit="Hz", format="%.1f", doc="Measured transfer rate")
    def frame_rate(self) -> float:
        return float(self.system.progress.frame_rate) if self.system else 0.0

    # -- detector attributes -----------------------------------------------------------
    @attribute(dtype=str, doc="Detector information (JSON, from the control device)")
    def det_info(self) -> str:
        return json.dumps(self._det["det_info"])

    @attribute(dtype=str, doc="Detector status (JSON, refreshed every second)")
    def det_status(self) -> str:
        return json.dumps(self._det["det_status"])

    @attribute(dtype=str, doc="Detector capabilities (JSON)")
    def det_capabilities(self) -> str:
        return json.dumps(self._det["det_capabilities"])

    @attribute(dtype=str, doc="Detector plugin")
    def det_plugin(self) -> str:
        return str(self._det["det_info"].get("plugin", ""))

    @attribute(dtype=str, doc="Detector model")
    def det_model(self) -> str:
        return str(self._det["det_info"].get("model", ""))

    @attribute(dtype=int, unit="px", format="%d", doc="Sensor width")
    def det_width(self) -> int:
        return int(self._det["det_info"].get("dimensions", {}).get("x", 0))

    @attribute(dtype=int, unit="px", format="%d", doc="Sensor height")
    def det_height(self) -> int:
        return int(self._det["det_info"].get("dimensions", {}).get("y", 0))

    @attribute(dtype=str, doc="Pixel type of the next acquisition")
    def det_pixel_type(self) -> str:
        s = self.system
        if s and s.params:
            return str(s.params["control"]["det"]["generator"]["pixel_type"])
        return str(
            self._det["det_info"].get("pixel_types", [""])[0] if self._det["det_info"].get("pixel_types") else ""
        )

    @attribute(dtype=(float,), max_dim_x=2, unit="m", format="%.3e", doc="Pixel size (x, y)")
    def det_pixel_size(self) -> list[float]:
        ps = self._det["det_info"].get("pixel_size", {})
        return [float(ps.get("x", 0.0)), float(ps.get("y", 0.0))]

    @attribute(dtype=(str,), max_dim_x=256, doc="Receiver devices, in rank order")
    def receivers(self) -> list[str]:
        return [r.name for r in self.system.receivers] if self.system else []

    @attribute(dtype=str, doc="Frame dispatch topology")
    def topology_name(self) -> str:
        return self.system.topology.name if self.system else ""

    # -- pipeline attributes -------------------------------------------------------------
    @attribute(dtype=str, doc="Processing class of the current pipeline")
    def processing_class(self) -> str:
        p = self.system.pipeline if self.system else None
        return str(p.proc_params.get("class_name", "")) if p else ""

    @attribute(dtype=str, doc="JSON: frame sources with their getter, shape (channels, height, width) and dtype")
    def frame_channels(self) -> str:
        p = self.system.pipeline if self.system else None
        if p is None or not p.frame_info:
            return "{}"
        info = p.frame_info
        shape = [info["nb_channels"], info["dimensions"]["y"], info["dimensions"]["x"]]
        return json.dumps(
            {
                name: {"getter": getter, "shape": shape, "pixel_type": info["pixel_type"]}
                for name, getter in FRAME_SOURCES.items()
            }
        )

    @attribute(dtype=str, doc="JSON: reduced data channels (count, row dtype, shapes, frames ready)")
    def reduced_data_channels(self) -> str:
        p = self.system.pipeline if self.system else None
        return json.dumps(p.channels() if p else {})

    @attribute(
        dtype=int, format="%d", doc="Frames whose reduced data is available in every channel (change events: new rows)"
    )
    def reduced_data_ready(self) -> int:
        return self._reduced_ready()

    def _reduced_ready(self) -> int:
        p = self.system.pipeline if self.system else None
        if p is None or not p.stores:
            return 0
        return int(min(store.ready for store in p.stores.values()))

    @attribute(dtype=str, doc="JSON: frame source -> [master file, dataset path]")
    def master_files(self) -> str:
        p = self.system.pipeline if self.system else None
        return json.dumps(p.master_files() if p else {})

    @attribute(dtype=bool, doc="True while the processing pipeline of the current run is active")
    def pipeline_running(self) -> bool:
        return bool(self.system and self.system.pipeline is not None and self.system.running)

    @attribute(
        dtype=((numpy.float32,),),
        max_dim_x=8192,
        max_dim_y=8192,
        doc="Newest processed frame (channel 0), for live views; refreshed at most every image_period_ms",
    )
    def last_image(self) -> Any:
        return self._last_image

    @attribute(dtype=int, format="%d", doc="Global index of last_image, -1 if none")
    def last_image_ready(self) -> int:
        return self._last_image_idx

    # -- convenience (memorized) ---------------------------------------------------------
    def _set_conv(self, name: str, value: Any, problem: str = "") -> None:
        """Store a convenience value; ``problem`` (if any) is a PARAM_ERROR, nothing stored."""
        if problem:
            tango.Except.throw_exception("PARAM_ERROR", f"{self.get_name()}: {name} {problem}", name)
        if self.system is not None and self.system.run_state in (RunState.PREPARING, RunState.STARTING):
            tango.Except.throw_exception(
                "OPERATION_NOT_ALLOWED",
                f"{self.get_name()}: {name} cannot change while {self.system.run_state.value}",
                name,
            )
        self._conv[name] = value

    @attribute(
        dtype=int,
        access=AttrWriteType.READ_WRITE,
        memorized=True,
        hw_memorized=True,
        format="%d",
        doc="Frames of the next Prepare (0 = endless)",
    )
    def acq_nb_frames(self) -> int:
        return int(self._conv["acq_nb_frames"])

    @acq_nb_frames.write
    def acq_nb_frames(self, value: int) -> None:
        self._set_conv("acq_nb_frames", int(value), "must be >= 0 (0 = endless)" if value < 0 else "")

    @attribute(
        dtype=float,
        access=AttrWriteType.READ_WRITE,
        memorized=True,
        hw_memorized=True,
        unit="s",
        format="%.6f",
        doc="Exposure time of the next Prepare",
    )
    def acq_expo_time(self) -> float:
        return float(self._conv["acq_expo_time"])

    @acq_expo_time.write
    def acq_expo_time(self, value: float) -> None:
        self._set_conv("acq_expo_time", float(value), f"must be > 0 s, not {value}" if not value > 0 else "")

    @attribute(
        dtype=float,
        access=AttrWriteType.READ_WRITE,
        memorized=True,
        hw_memorized=True,
        unit="s",
        format="%.6f",
        doc="Latency time of the next Prepare",
    )
    def acq_latency_time(self) -> float:
        return float(self._conv["acq_latency_time"])

    @acq_latency_time.write
    def acq_latency_time(self, value: float) -> None:
        self._set_conv("acq_latency_time", float(value), f"must be >= 0 s, not {value}" if not value >= 0 else "")

    @attribute(
        dtype=tango.DevEnum,
        enum_labels=[m.upper() for m in TRIGGER_MODES],
        access=AttrWriteType.READ_WRITE,
        memorized=True,
        hw_memorized=True,
        doc="Trigger mode of the next Prepare",
    )
    def acq_trigger_mode(self) -> int:
        return int(self._conv["acq_trigger_mode"])

    @acq_trigger_mode.write
    def acq_trigger_mode(self, value: int) -> None:
        self._set_conv("acq_trigger_mode", int(value))

    @attribute(
        dtype=bool,
        access=AttrWriteType.READ_WRITE,
        memorized=True,
        hw_memorized=True,
        doc="Save frames in the next acquisition",
    )
    def saving_enabled(self) -> bool:
        return bool(self._conv["saving_enabled"])

    @saving_enabled.write
    def saving_enabled(self, value: bool) -> None:
        self._set_conv("saving_enabled", bool(value))

    @attribute(
        dtype=str,
        access=AttrWriteType.READ_WRITE,
        memorized=True,
        hw_memorized=True,
        doc="Directory of the saved files",
    )
    def saving_directory(self) -> str:
        return str(self._conv["saving_directory"])

    @saving_directory.write
    def saving_directory(self, value: str) -> None:
        self._set_conv("saving_directory", str(value))

    @attribute(
        dtype=str,
        access=AttrWriteType.READ_WRITE,
        memorized=True,
        hw_memorized=True,
        doc="File name prefix of the saved files",
    )
    def saving_prefix(self) -> str:
        return str(self._conv["saving_prefix"])

    @saving_prefix.write
    def saving_prefix(self, value: str) -> None:
        bad = not value or "/" in value
        self._set_conv("saving_prefix", str(value), f"{value!r} must be a non-empty file name" if bad else "")


def _long_string(argin: Any, nb_ints: int, command: str) -> tuple[list[int], list[str]]:
    """Check a DevVarLongStringArray argument: ``nb_ints`` integers and strings."""
    try:
        ints, strs = [int(v) for v in argin[0]], [str(v) for v in argin[1]]
    except (TypeError, ValueError, IndexError):
        raise ParamError(f"{command} takes [[{nb_ints} integer(s)], [string(s)]]") from None
    if len(ints) != nb_ints:
        raise ParamError(f"{command} takes {nb_ints} integer(s), got {len(ints)}")
    return ints, strs
