"""The conductor seen from Bliss: a gevent-friendly client of its Tango interface.

Progress (``nb_frames_acquired``, ``reduced_data_ready``, ``run_state``) is followed by
change events when the conductor pushes them, with a polling fallback: a waiter wakes on
each event and, at the latest, every ``poll_period`` to read the attributes itself, so a
lost or unsupported event costs latency, never a hang.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import numpy as np
import tango

from ..core.devencoded import decode_frame, decode_rows
from ..core.lima2 import STATS_DTYPE
from .params import ACTIVE, TRANSIENT, failure_message, parse_json

logger = logging.getLogger(__name__)

WATCHED = ("run_state", "nb_frames_acquired", "nb_frames_ready", "reduced_data_ready")
REPLY_POLL_S = 0.0005


class AcquisitionFailed(RuntimeError):
    """The conductor's run failed; the message names the device and the reason."""


def _plausible(name: str, value: Any) -> bool:
    """A progress value worth keeping: set, and for counts an int32 frame count."""
    if value is None:
        return False
    if name != "run_state" and not 0 <= int(value) < 2**31:
        logger.warning("ignoring an implausible %s = %r from the conductor", name, value)
        return False
    return True


class RunWatcher:
    """Latest values of the watched attributes, from events or polling."""

    def __init__(self, proxy: tango.DeviceProxy, poll_period: float = 0.005, safety_period: float = 0.1) -> None:
        self._proxy = proxy
        self._poll_period = poll_period
        self._safety_period = safety_period
        self._changed = gevent.event.Event()
        self.values: dict[str, Any] = {}
        self._event_ids: dict[str, int] = {}
        self.subscribed: set[str] = set()

    def subscribe(self) -> None:
        """Subscribe to change events where the conductor offers them (others are polled)."""
        for name in WATCHED:
            if name in self._event_ids:
                continue
            try:
                self._event_ids[name] = self._proxy.subscribe_event(name, tango.EventType.CHANGE_EVENT, self._on_event)
                self.subscribed.add(name)
            except tango.DevFailed as exc:
                logger.debug("no change events for %s (%s): polled", name, exc.args[0].desc)

    def unsubscribe(self) -> None:
        for eid in list(self._event_ids.values()):
            try:
                self._proxy.unsubscribe_event(eid)
            except tango.DevFailed:
                pass
        self._event_ids.clear()
        self.subscribed.clear()

    def _on_event(self, event: Any) -> None:
        if event.err or event.attr_value is None:
            self.subscribed.discard(event.attr_name.rsplit("/", 1)[-1].lower())
            self._changed.set()
            return
        name = event.attr_value.name.lower()
        if _plausible(name, event.attr_value.value):
            self.values[name] = event.attr_value.value
        self.subscribed.add(name)
        self._changed.set()

    def refresh(self) -> None:
        """Read every watched attribute now (one call)."""
        for attr in self._proxy.read_attributes(list(WATCHED)):
            if _plausible(attr.name.lower(), attr.value):
                self.values[attr.name.lower()] = attr.value

    def wait(
        self,
        condition: Callable[[dict[str, Any]], bool],
        timeout: float | None = None,
        needs: tuple[str, ...] = WATCHED,
        poll_period: float | None = None,
    ) -> bool:
        """Wait until ``condition(values)``; False after ``timeout`` s. Events wake it at
        once; when one of the attributes it ``needs`` has no events, they are read every
        ``poll_period`` s (default: the watcher's), else every ``safety_period`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.values:
            self.refresh()
        polled = time.monotonic()
        while True:
            if condition(self.values):
                return True
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            period = self._safety_period if set(needs) <= self.subscribed else (poll_period or self._poll_period)
            if now - polled >= period:
                self.refresh()
                polled = now
                continue
            self._changed.clear()
            wake = polled + period - now
            if deadline is not None:
                wake = min(wake, deadline - now)
            self._changed.wait(max(0.0, wake))


class ConductorClient:
    """Commands and reads of one conductor device, for the Bliss controller."""

    def __init__(self, tango_name: str, timeout_ms: int = 10000) -> None:
        self.name = tango_name
        self.proxy = tango.DeviceProxy(tango_name, green_mode=tango.GreenMode.Gevent)
        self.proxy.set_timeout_millis(timeout_ms)
        self.watcher = RunWatcher(self.proxy)
        self._trigger_id: int | None = None

    # -- reads -------------------------------------------------------------------
    def read(self, name: str) -> Any:
        return self.proxy.read_attribute(name).value

    def read_json(self, name: str) -> Any:
        return parse_json(self.read(name))

    def read_many(self, names: list[str]) -> dict[str, Any]:
        return {a.name: a.value for a in self.proxy.read_attributes(names)}

    def run_state(self) -> str:
        return str(self.read("run_state"))

    def state_status(self) -> tuple[str, str]:
        return str(self.proxy.State()), str(self.proxy.Status())

    def capabilities(self) -> dict[str, Any]:
        return self.read_json("det_capabilities")

    def failure(self, detector: str) -> AcquisitionFailed:
        """The error of a failed run, from the conductor's errors and Status."""
        try:
            values = self.read_many(["errors", "last_error"])
            status = str(self.proxy.Status())
            errors = list(values["errors"] or [])
            last = str(values["last_error"] or "")
        except tango.DevFailed as exc:
            return AcquisitionFailed(f"{detector}: the conductor {self.name} is unreachable: {exc.args[0].desc}")
        return AcquisitionFailed(failure_message(detector, status, last, errors))

    # -- commands ------------------------------------------------------------------
    def make_ready(self, timeout: float = 30.0) -> None:
        """Bring a previous run to an end so that Prepare is allowed: wait out a
        transient state, Stop an active run, Reset a failed one."""
        deadline = time.monotonic() + timeout
        state = self.run_state()
        while state in TRANSIENT and time.monotonic() < deadline:
            gevent.sleep(0.01)
            state = self.run_state()
        if state in ACTIVE:
            self.proxy.Stop()
            while self.run_state() in ACTIVE and time.monotonic() < deadline:
                gevent.sleep(0.01)
            state = self.run_state()
        if state == "FAULT" or self._system_faulty():
            self.proxy.Reset()

    def _system_faulty(self) -> bool:
        return str(self.proxy.State()) in ("FAULT", "UNKNOWN")

    def prepare(self, params: dict[str, Any]) -> str:
        """Prepare (after ``make_ready``); one Reset and retry if the system refuses."""
        self.make_ready()
        text = json.dumps(params)
        try:
            return str(self.proxy.Prepare(text))
        except tango.DevFailed as exc:
            if exc.args[0].reason not in ("OPERATION_NOT_ALLOWED", "DEVICE_ERROR"):
                raise
            logger.info("%s: Prepare refused (%s), resetting once", self.name, exc.args[0].desc)
            self.proxy.Reset()
            return str(self.proxy.Prepare(text))

    def start(self) -> None:
        self.proxy.Start()

    def trigger(self) -> None:
        """Send a software trigger without waiting for the reply, which
        :meth:`trigger_done` collects: its round trip overlaps the exposure."""
        self.trigger_done()  # a reply still pending (an aborted point) is collected first
        self._trigger_id = self.proxy.command_inout_asynch("Trigger")

    def trigger_done(self, timeout: float = 10.0) -> None:
        """Wait for the reply of the last trigger; the conductor's ``DevFailed`` if it
        refused it."""
        idx, self._trigger_id = self._trigger_id, None
        if idx is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.proxy.command_inout_reply(idx)
                return
            except tango.AsynReplyNotArrived:
                if time.monotonic() > deadline:
                    raise
                gevent.sleep(REPLY_POLL_S)

    def stop(self) -> None:
        self.proxy.Stop()

    # -- data --------------------------------------------------------------------------
    def reduced_rows(self, source: str, channel: int, from_frame: int, max_rows: int = 0) -> np.ndarray:
        raw = self.proxy.GetReducedData([[channel, from_frame, max_rows], [source]])
        return decode_rows((raw[0], bytes(raw[1])), STATS_DTYPE)

    def frame(self, frame_idx: int, source: str = "frame") -> tuple[np.ndarray, int]:
        raw = self.proxy.GetFrame([[frame_idx], [source]])
        return decode_frame((raw[0], bytes(raw[1])))
