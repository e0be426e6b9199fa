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
UUID = "acq_uuid"
KEPT_RUNS = 4
FINAL = ("DONE", "STOPPED", "FAULT")
GONE = "GONE"
"""The run state a scan sees once the conductor's current run is another one (Prepared by
another client, or forgotten by a Reset) before its own run ended."""
REPLY_POLL_S = 0.0005
FAILURE_SETTLE_S = 1.0
"""How long a failed scan waits for the conductor to publish the errors behind a refusal."""


class AcquisitionFailed(RuntimeError):
    """The conductor's run failed; the message names the device and the reason."""


def devfailed_text(exc: tango.DevFailed) -> str:
    """Every distinct description of a ``DevFailed``, outermost first."""
    descs: list[str] = []
    for err in exc.args:
        desc = str(getattr(err, "desc", err)).strip()
        if desc and desc not in descs:
            descs.append(desc)
    return " / ".join(descs) or repr(exc)


def _plausible(name: str, value: Any) -> bool:
    """A progress value worth keeping: set, and for counts an int32 frame count."""
    if value is None:
        return False
    if name != "run_state" and not 0 <= int(value) < 2**31:
        logger.warning("ignoring an implausible %s = %r from the conductor", name, value)
        return False
    return True


class RunWatcher:
    """Latest values of the watched attributes of each run, from events or polling.

    Every value is filed under the run it belongs to: a read takes ``acq_uuid`` in the
    same call; an event is filed under the ``acq_uuid`` of the events received before it
    (the conductor pushes a new run's ``acq_uuid`` before any other value of that run, and
    one device's events arrive in order). A late event of an ended run thus never decides
    anything for the next one.
    """

    def __init__(self, proxy: tango.DeviceProxy, poll_period: float = 0.005, safety_period: float = 0.1) -> None:
        self._proxy = proxy
        self._poll_period = poll_period
        self._safety_period = safety_period
        self._changed = gevent.event.Event()
        self._runs: dict[str, dict[str, Any]] = {}
        self._event_uuid: str | None = None
        self.read_uuid: str | None = None  # the current run's, as last read (events may lag)
        self._event_ids: dict[str, int] = {}
        self.subscribed: set[str] = set()

    def subscribe(self) -> None:
        """Subscribe to change events where the conductor offers them (others are polled)."""
        for name in (UUID, *WATCHED):
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
        self._event_uuid = None

    def _run_values(self, uuid: str) -> dict[str, Any]:
        """The values of run ``uuid`` (created empty; only the newest runs are kept)."""
        values = self._runs.get(uuid)
        if values is None:
            values = self._runs[uuid] = {}
            while len(self._runs) > KEPT_RUNS:
                del self._runs[next(iter(self._runs))]
        return values

    def _on_event(self, event: Any) -> None:
        if event.err or event.attr_value is None:
            name = event.attr_name.rsplit("/", 1)[-1].lower()
            self.subscribed.discard(name)
            if name == UUID:
                self._event_uuid = None  # later events cannot be filed: polled until it is back
            self._changed.set()
            return
        name = event.attr_value.name.lower()
        value = event.attr_value.value
        if name == UUID:
            self._event_uuid = str(value or "")
            self._run_values(self._event_uuid)
        elif self._event_uuid is not None and _plausible(name, value):
            self._run_values(self._event_uuid)[name] = value
        self.subscribed.add(name)
        self._changed.set()

    def refresh(self) -> str:
        """Read every watched attribute now (one call); the uuid of the run they are of."""
        attrs = self._proxy.read_attributes([UUID, *WATCHED])
        uuid = self.read_uuid = str(attrs[0].value or "")
        values = self._run_values(uuid)
        for attr in attrs[1:]:
            if _plausible(attr.name.lower(), attr.value):
                values[attr.name.lower()] = attr.value
        return uuid

    def values(self, uuid: str) -> dict[str, Any]:
        """The latest values of run ``uuid`` (empty if none is known)."""
        return self._runs.get(uuid, {})

    def _evented(self, uuid: str, needs: tuple[str, ...]) -> bool:
        """Events deliver the values ``needs`` of run ``uuid``: they need not be polled."""
        return self._event_uuid == uuid and UUID in self.subscribed and set(needs) <= self.subscribed

    def wait(
        self,
        uuid: str,
        condition: Callable[[dict[str, Any]], bool],
        timeout: float | None = None,
        needs: tuple[str, ...] = WATCHED,
        poll_period: float | None = None,
    ) -> bool:
        """Wait until ``condition(values of run uuid)``; False after ``timeout`` s. Events
        wake it at once; when the values it ``needs`` do not come by events, they are read
        every ``poll_period`` s (default: the watcher's), else every ``safety_period`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if uuid not in self._runs:
            self.refresh()
        polled = time.monotonic()
        while True:
            if condition(self.values(uuid)):
                return True
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            period = self._safety_period if self._evented(uuid, needs) else (poll_period or self._poll_period)
            if now - polled >= period:
                self.refresh()
                polled = now
                continue
            self._changed.clear()
            wake = polled + period - now
            if deadline is not None:
                wake = min(wake, deadline - now)
            self._changed.wait(max(0.0, wake))


class Run:
    """One conductor run as a scan prepared it: its uuid, the values the conductor
    published for it, the replies of the Triggers sent for it.

    Nothing of a run outlives it: :meth:`close` (when the scan stops or fails) collects or
    cancels the replies still pending, and a new scan has a new ``Run``.
    """

    def __init__(self, client: ConductorClient, uuid: str) -> None:
        self.client = client
        self.uuid = uuid
        self._triggers: list[int] = []
        self.closed = False

    @property
    def values(self) -> dict[str, Any]:
        """The run's latest values; ``run_state`` is ``GONE`` once a read showed another
        current run while this one had not ended (it will never end for this scan)."""
        watcher = self.client.watcher
        values = watcher.values(self.uuid)
        if watcher.read_uuid not in (None, self.uuid) and str(values.get("run_state")) not in FINAL:
            return {**values, "run_state": GONE}
        return values

    def refresh(self) -> None:
        self.client.watcher.refresh()

    def wait(
        self,
        condition: Callable[[dict[str, Any]], bool],
        timeout: float | None = None,
        needs: tuple[str, ...] = WATCHED,
        poll_period: float | None = None,
    ) -> bool:
        return self.client.watcher.wait(self.uuid, condition, timeout, needs, poll_period)

    def trigger(self) -> None:
        """Send a software trigger without waiting for the reply, which
        :meth:`trigger_done` collects: its round trip overlaps the exposure."""
        if self.closed:
            raise RuntimeError(f"run {self.uuid} is closed: no more Trigger")
        self.trigger_done()  # a reply still pending (an aborted point) is collected first
        self._triggers.append(self.client.proxy.command_inout_asynch("Trigger"))

    def trigger_done(self, timeout: float = 10.0) -> None:
        """Wait for the replies of this run's Triggers; the conductor's ``DevFailed`` if
        it refused one."""
        deadline = time.monotonic() + timeout
        while self._triggers:
            idx = self._triggers[0]
            try:
                self.client.proxy.command_inout_reply(idx)
            except tango.AsynReplyNotArrived:
                if time.monotonic() > deadline:
                    raise
                gevent.sleep(REPLY_POLL_S)
                continue
            except tango.DevFailed:
                self._triggers.pop(0)
                raise
            self._triggers.pop(0)

    def close(self, timeout: float = 1.0) -> list[tango.DevFailed]:
        """End of the run for this scan: the Trigger replies still pending are collected
        (or, past ``timeout``, cancelled) and no more Trigger is sent; the refusals among
        them (already explained by the run's end) are returned."""
        self.closed = True
        refused: list[tango.DevFailed] = []
        deadline = time.monotonic() + timeout
        while self._triggers:
            try:
                self.trigger_done(timeout=max(0.0, deadline - time.monotonic()))
            except tango.AsynReplyNotArrived:
                break
            except tango.DevFailed as exc:
                refused.append(exc)
        for idx in self._triggers:
            try:
                self.client.proxy.cancel_asynch_request(idx)
            except (tango.DevFailed, AttributeError):
                pass
        self._triggers.clear()
        return refused


class ConductorClient:
    """Commands and reads of one conductor device, for the Bliss controller."""

    def __init__(self, tango_name: str, timeout_ms: int = 10000) -> None:
        self.name = tango_name
        self.proxy = tango.DeviceProxy(tango_name, green_mode=tango.GreenMode.Gevent)
        self.proxy.set_timeout_millis(timeout_ms)
        self.watcher = RunWatcher(self.proxy)
        self.pending_prepare: Any = None
        self.complete_params: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        """Adds what the controller sends with every Prepare (detector settings, master
        file metadata) to a scan's params."""
        self.last_params: dict[str, Any] = {}
        """The params of the last Prepare, as sent."""

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

    def failure(self, detector: str, run: Run | None = None, cause: str = "") -> AcquisitionFailed:
        """The error of a failed run: the device, ``cause`` (what the scan saw, e.g. a
        refused command's text) and the run's own errors; the conductor's errors and Status
        only while its current run is ``run`` (never those of another, healthy run)."""
        deadline = time.monotonic() + FAILURE_SETTLE_S
        try:
            while True:
                values = self.read_many(["acq_uuid", "errors", "last_error", "run_state"])
                status = str(self.proxy.Status())
                # a refusal may come a moment before the conductor publishes the failure
                # that caused it: wait (briefly) for its errors rather than report none
                settled = values["errors"] or values["run_state"] not in ACTIVE or not cause
                if settled or time.monotonic() > deadline:
                    break
                gevent.sleep(0.02)
        except tango.DevFailed as exc:
            text = f"{detector}: the conductor {self.name} is unreachable: {exc.args[0].desc}"
            return AcquisitionFailed(f"{text}\n  - {cause}" if cause else text)
        current = str(values["acq_uuid"] or "")
        if run is not None and current != run.uuid:
            note = f"run {run.uuid} is no longer the conductor's current run ({current or 'none'})"
            return AcquisitionFailed(failure_message(detector, "", "", [], cause, note))
        errors = list(values["errors"] or [])
        last = str(values["last_error"] or "")
        return AcquisitionFailed(failure_message(detector, status, last, errors, cause))

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

    def prepare(self, params: dict[str, Any]) -> Run:
        """Prepare (after ``make_ready``); one Reset and retry if the system refuses. The
        new run, with nothing of the previous ones."""
        self.make_ready()
        if self.complete_params is not None:
            params = self.complete_params(params)
        self.last_params = params
        text = json.dumps(params)
        try:
            uuid = self._prepare(text)
        except tango.DevFailed as exc:
            if exc.args[0].reason not in ("OPERATION_NOT_ALLOWED", "DEVICE_ERROR"):
                raise
            logger.info("%s: Prepare refused (%s), resetting once", self.name, exc.args[0].desc)
            self.proxy.Reset()
            uuid = self._prepare(text)
        return Run(self, uuid)

    def _prepare(self, text: str) -> str:
        """Prepare; when the caller is interrupted (Ctrl-C), the request stays in
        ``pending_prepare`` for :meth:`undo_prepare` (the conductor still serves it)."""
        pending = self.proxy.command_inout("Prepare", text, wait=False)
        self.pending_prepare = pending
        try:
            uuid = str(pending.get())
        except tango.DevFailed:
            self.pending_prepare = None
            raise
        self.pending_prepare = None
        return uuid

    def undo_prepare(self, timeout: float = 30.0) -> None:
        """An interrupted Prepare is cancelled (Stop), or what it prepared released (Close):
        the conductor is not left PREPARED by a scan that never started."""
        pending, self.pending_prepare = self.pending_prepare, None
        if pending is None:
            return
        self.proxy.Stop()  # cancels a Prepare still under way
        try:
            uuid = str(pending.get(timeout=timeout))
        except (tango.DevFailed, gevent.Timeout):
            return  # failed or cancelled: nothing prepared
        values = self.read_many(["run_state", UUID])
        if values["run_state"] == "PREPARED" and values[UUID] == uuid:
            self.proxy.Close()

    def start(self) -> None:
        self.proxy.Start()

    def stop(self) -> None:
        self.proxy.Stop()

    def close(self) -> None:
        self.proxy.Close()

    # -- data --------------------------------------------------------------------------
    def reduced_rows(
        self, source: str, channel: int, from_frame: int, max_rows: int = 0, dtype: np.dtype = STATS_DTYPE
    ) -> np.ndarray:
        """Rows of ``dtype`` (ROI statistics' by default; ``nb_peaks``, ``fill_factor``
        have their own)."""
        raw = self.proxy.GetReducedData([[channel, from_frame, max_rows], [source]])
        return decode_rows((raw[0], bytes(raw[1])), dtype)

    def frame(self, frame_idx: int, source: str = "frame") -> tuple[np.ndarray, int]:
        raw = self.proxy.GetFrame([[frame_idx], [source]])
        return decode_frame((raw[0], bytes(raw[1])))
