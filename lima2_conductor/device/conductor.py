"""``Lima2Conductor``: one Tango device for a control and N receiver devices.

Commands parse, call the core and map errors; attributes are declared from the spec list
in :mod:`.attributes` and read the snapshot the system hands the monitor (:mod:`.monitor`)
after every tick and command. Nothing here writes the system's state.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy
import tango
from tango import DevState, GreenMode
from tango.server import Device, attribute, command, device_property

from ..backend.database import check_database
from ..backend.frame_fetch import FrameFetcher
from ..backend.tango_devices import TangoControl, TangoDevice, TangoReceiver, find_processing
from ..core.errors import ConductorError, ParamError
from ..core.params import parse_json_object, settings_overrides
from ..core.ports import BlockingControl, FrameRelay
from ..core.system import AcquisitionSystem
from ..core.topology import make_topology
from ..core.view import ConductorView
from ..server.request_thread import RequestThreadHooks, in_request_thread, request_thread_path
from . import logs
from .attributes import namespace
from .data_commands import DataCommands
from .errors import tango_errors
from .monitor import Monitor
from .request_memory import RequestMemory
from .settings import SETTINGS, persist, show_set_points
from .specs import VIEW_ATTRS

logger = logging.getLogger(__name__)
T = TypeVar("T")
SpecAttributes = type("SpecAttributes", (), namespace(VIEW_ATTRS, SETTINGS))


class Lima2Conductor(RequestThreadHooks, SpecAttributes, DataCommands, Device):  # type: ignore[misc, valid-type]
    """Conducts a distributed Lima2 acquisition as if it were one detector."""

    green_mode = GreenMode.Asyncio
    _system: AcquisitionSystem | None = None
    monitor: Monitor | None = None
    frames: FrameRelay | None = None
    INITIAL_VIEW = ConductorView(tango_state="INIT", status="Initialising")

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
        t0 = time.monotonic()
        await super().init_device()
        self.set_state(DevState.INIT)
        self.set_status("Initialising: observing the Lima2 devices")
        self._system = None
        self.settings: dict[str, Any] = {s.name: s.default for s in SETTINGS if not s.alias_of}
        if self.master_file_dir:
            self.settings["saving_directory"] = self.master_file_dir
        self.image = numpy.zeros((1, 1), dtype=numpy.float32)
        self.image_idx = -1
        self.init_error = ""
        self.monitor = None
        self.log_handler = logs.attach(self)
        self.loop = asyncio.get_running_loop()
        self.frames = FrameFetcher(self.device_timeout_ms)
        self.request_memory = RequestMemory()
        for name in ("State", "Status"):  # the others declare their events
            self.set_change_event(name, True, False)
        self._initialise_write_values()
        try:
            self._system = self.make_system()
            self.monitor = Monitor(self, remote_calls=lambda: TangoDevice.calls)
            self._system.publish_to(self.monitor.show)
            self.monitor.start()
        except Exception as exc:  # init_device never raises: FAULT and a Status
            self.init_error = f"Initialisation failed: {exc}"
            logger.error("init failed: %s", traceback.format_exc())
            self.set_state(DevState.FAULT)
            self.set_status(self.init_error)
        logger.info("init_device done in %.1f ms; %s", 1000 * (time.monotonic() - t0), request_thread_path())

    def make_system(self) -> AcquisitionSystem:
        """The core over Tango backends (tests replace this to run the device on fakes)."""
        if not self.control_device or not self.receiver_devices:
            raise ParamError("properties control_device and receiver_devices must be set")
        receivers = list(self.receiver_devices)
        topo = make_topology(self.topology, len(receivers), list(self.round_robin_ordering) or None)
        timeout = self.device_timeout_ms
        fetch = self.frames.fetch if self.frames is not None else None
        return AcquisitionSystem(
            control=TangoControl(self.control_device, timeout),
            receivers=[TangoReceiver(r, timeout) for r in receivers],
            topology=topo,
            find_processing=lambda uid, n: find_processing(uid, n, timeout, fetch=fetch),
            timeout_s=timeout / 1000,
            watchdog_s=self.watchdog_s,
            check_database=check_database,
        )

    async def delete_device(self) -> None:
        """Awaits nothing (an operator's Init answers at once, whatever the devices do):
        the monitor and the old system's work are cancelled, and whatever they still do on
        their way out ends in the background."""
        t0 = time.monotonic()
        logger.info("delete_device: stopping the monitor")
        if self.monitor is not None:
            _reap(self.monitor.stop())
        if self._system is not None:
            self._system.publish_to(None)
            self._system.release()  # no event subscription outlives the system that made it
        if self.frames is not None:
            self.frames.close()
        logger.info("delete_device done in %.1f ms", 1000 * (time.monotonic() - t0))
        logs.detach(self.log_handler)

    def _initialise_write_values(self) -> None:
        """Memorized settings show their current value as the set point (not "not initialised")."""
        attrs = self.get_device_attr()
        for setting in SETTINGS:
            try:
                attrs.get_w_attr_by_name(setting.name).set_write_value(self.settings[setting.key])
            except tango.DevFailed:
                logger.debug("no write value for %s", setting.name)

    def in_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` in the event loop from a Tango request thread, and wait for it."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    @property
    def view(self) -> ConductorView:
        """The snapshot the attributes read: the one the system handed the monitor last."""
        return self.monitor.view if self.monitor is not None else self.INITIAL_VIEW

    @property
    def system(self) -> AcquisitionSystem:
        """The acquisition system; PARAM_ERROR while the conductor is not configured."""
        if self._system is None:
            raise ParamError(f"the conductor is not configured: {self.init_error}")
        return self._system

    # -- state ------------------------------------------------------------------------
    @in_request_thread
    def dev_state(self) -> DevState:
        """From the latest snapshot (never a fan-out); INIT until the devices were observed once."""
        if self._system is None or self.monitor is None or not self.monitor.observed:
            return self.get_state()
        return DevState.names[self.view.tango_state]

    @in_request_thread
    def dev_status(self) -> str:
        if self._system is None or self.monitor is None or not self.monitor.observed:
            return self.get_status()
        return self.view.status

    async def change_setting(self, name: str, value: Any, problem: str) -> None:
        """Store a setting; ``problem`` (if any) is a PARAM_ERROR and nothing changes, nor
        when the Tango database cannot memorize it (:func:`.settings.persist`). The check
        and the change happen together, before the database write: a Prepare that begins
        while the write is under way already has the new value, and one under way refuses
        the change."""
        if problem:
            tango.Except.throw_exception("PARAM_ERROR", f"{self.get_name()}: {name} {problem}", name)
        if self._system is not None and not self._system.allows("WriteSetting"):
            tango.Except.throw_exception(
                "OPERATION_NOT_ALLOWED",
                f"{self.get_name()}: {name} cannot change while {self._system.run_state.value}",
                name,
            )
        before = self.settings[name]
        self.settings[name] = value
        try:
            await persist(self, name, value)
        except BaseException:
            if self.settings[name] == value:  # no later write has replaced it
                self.settings[name] = before
            raise
        show_set_points(self, name, value)
        logger.info("%s = %r", name, value)
        if self.monitor is not None:
            self.monitor.publish_settings()

    # -- commands ------------------------------------------------------------------------
    @command(
        dtype_in=str,
        doc_in='Prepares an acquisition. JSON {"control": {...}, "receiver": {...}, "processing": {...}, '
        '"masterfile_metadata": {...}}, each optional and partial, deep-merged over the defaults and the acq_*/saving_* settings; "" = defaults. '
        "Allowed when no acquisition runs (IDLE, PREPARED, DONE, STOPPED).",
        dtype_out=str,
        doc_out="Acquisition UUID",
    )
    @tango_errors
    async def Prepare(self, params_json: str) -> str:
        self.request_memory.served(len(params_json))
        s = self.system
        s.check("Prepare")
        try:
            user = parse_json_object(params_json, "params") if params_json.strip() else {}
        except ConductorError as exc:
            s.refuse("Prepare", exc)
            raise
        return await s.run_command(s.prepare(user, settings_overrides(self.settings)))

    @command(doc_in="Starts the prepared acquisition (receivers, then the control). Allowed in PREPARED.")
    @tango_errors
    async def Start(self) -> None:
        await self.system.run_command(self.system.start())

    @command(
        doc_in="Software trigger: one more frame (trigger mode SOFTWARE). Allowed while RUNNING.",
        cmd_green_mode=False,
    )
    @tango_errors
    def Trigger(self) -> None:
        """Served in the request thread (a step scan sends one per point): with a backend
        that offers it, the control is triggered by a blocking call, without waiting for
        the event loop; the system then follows the control's frame count."""
        system = self.system
        if isinstance(system.control, BlockingControl):
            system.check("Trigger")
            system.control.trigger_now()
            self.loop.call_soon_threadsafe(system.triggered)
        else:
            self.in_loop(system.trigger())

    @command(
        doc_in="Stops the running acquisition (or cancels a Prepare); the run ends STOPPED. "
        "Always allowed: when nothing runs it only stops devices still running."
    )
    @tango_errors
    async def Stop(self) -> None:
        await self.system.run_command(self.system.stop())

    @command(
        doc_in="Releases the prepared acquisition: the control closes, the receivers reset. "
        "Allowed when no acquisition runs."
    )
    @tango_errors
    async def Close(self) -> None:
        await self.system.run_command(self.system.close())

    @command(
        doc_in="Resets every device and forgets the run (clears FAULT and errors). "
        "Allowed when no acquisition runs, and in FAULT."
    )
    @tango_errors
    async def Reset(self) -> None:
        await self.system.run_command(self.system.reset())

    # -- the live image ----------------------------------------------------------------
    @attribute(
        dtype=((numpy.float32,),),
        max_dim_x=8192,
        max_dim_y=8192,
        change_event_implemented=True,
        change_event_detect=False,
        read_green_mode=False,
        label="Last image",
        doc="Newest processed frame (channel 0), for live views; refreshed at most every image_period_ms "
        "while running, and once at the end of the run",
    )
    def last_image(self) -> Any:
        return self.image

    @attribute(
        dtype=int,
        format="%d",
        change_event_implemented=True,
        change_event_detect=False,
        read_green_mode=False,
        label="Last image ready",
        doc="Global index of last_image, -1 if none (Lima1 name)",
    )
    def last_image_ready(self) -> int:
        return self.image_idx


_REAPING: set[asyncio.Task[None]] = set()
REAP_WARN_S = 5.0


def _reap(tasks: list[asyncio.Task[Any]]) -> None:
    """Wait in the background for cancelled tasks to end, and say so if one takes long."""
    if not tasks:
        return

    async def reap() -> None:
        t0 = time.monotonic()
        _, pending = await asyncio.wait(tasks, timeout=REAP_WARN_S)
        if pending:
            logger.warning("%d cancelled task(s) still ending after %.0f s", len(pending), REAP_WARN_S)
            await asyncio.wait(pending)
        logger.debug("cancelled tasks ended in %.1f ms", 1000 * (time.monotonic() - t0))

    task = asyncio.ensure_future(reap())
    _REAPING.add(task)
    task.add_done_callback(_REAPING.discard)
