"""Frames asked of processing devices from a Tango request thread (``GetFrame``).

A frame getter is called over the conductor's own GIOP client (:mod:`.giop`), and through
pytango when that client cannot serve it: the command takes something other than an
integer or answers something other than a DevEncoded, the device has no IOR in a database
(``#dbase=no``), or Tango's access control gives the conductor read-only access (pytango
checks that on the client side, so the wire client is not used to bypass it). A wire
exchange that fails for any reason other than the device's own ``DevFailed`` is repeated
through pytango; after two such failures in a row, the device's frames go through pytango
for the rest of the run.
"""

from __future__ import annotations

import json
import logging
import threading

import tango

from . import giop
from .tango_devices import LAST_FRAMES, POLL_TIMEOUT_MS, BlockingProxies

logger = logging.getLogger(__name__)

MAX_WIRE_FAILURES = 2


class FrameFetcher:
    """Frame getters of the current run's processing devices, called from any thread."""

    def __init__(self, timeout_ms: int, poll_timeout_ms: int = POLL_TIMEOUT_MS) -> None:
        self.proxies = BlockingProxies(timeout_ms)
        self.poll_proxies = BlockingProxies(poll_timeout_ms)  # progress reads: a hung device is not waited for
        self.wire = giop.ConnectionPool(timeout_ms / 1000)
        self._lock = threading.Lock()
        self._run = ""
        self._routes: dict[tuple[str, str], giop.Route | None] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self.wire_calls = 0
        self.pytango_calls = 0

    def fetch(self, run_uuid: str, device: str, command: str, frame_idx: int) -> tuple[str, bytes | bytearray]:
        """``command(frame_idx)`` on ``device``: (format, bytes); raises ``DevFailed``."""
        route = self._route(run_uuid, device, command)
        if route is not None:
            try:
                result = self.wire.command_encoded(route, command, frame_idx)
            except giop.DeviceRefused as exc:
                self._wire_answered(device, command)
                raise _dev_failed([*exc.errors, _command_failed(device, command)]) from None
            except TimeoutError:
                raise _dev_failed([_timeout(device, command)]) from None
            except giop.ArgumentError as exc:  # this call only: pytango says what is wrong
                logger.debug("%s/%s: %s", device, command, exc)
            except Exception as exc:  # the wire, not the device: pytango
                self._wire_failed(run_uuid, device, command, route, exc)
            else:
                self._wire_answered(device, command, count=True)
                return result
        with self._lock:
            self.pytango_calls += 1
        return tuple(self.proxies.get(run_uuid, device).command_inout(command, frame_idx))  # type: ignore[return-value]

    def last_frames(self, run_uuid: str, devices: list[str]) -> list[dict[str, int]]:
        """Every device's ``last_frames``, read at the same time (asynchronous requests
        from this thread, each bounded by the poll timeout); ``{}`` for a device that did
        not answer."""
        pending = []
        for name in devices:
            try:
                proxy = self.poll_proxies.get(run_uuid, name)
                pending.append((proxy, proxy.read_attribute_asynch(LAST_FRAMES)))
            except tango.DevFailed:
                pending.append((None, None))
        values = []
        for proxy, request in pending:
            try:  # 0: until the reply or the proxy's timeout (a shorter wait here polls)
                value = None if proxy is None else json.loads(proxy.read_attribute_reply(request, 0).value)
            except (tango.DevFailed, ValueError, TypeError):
                value = None
            values.append(value if isinstance(value, dict) else {})
        return values

    def stats(self) -> dict[str, int]:
        """Frame calls made over the wire and through pytango."""
        return {"wire": self.wire_calls, "pytango": self.pytango_calls}

    def close(self) -> None:
        self.wire.close()

    def _route(self, run_uuid: str, device: str, command: str) -> giop.Route | None:
        key = (device, command)
        with self._lock:
            if run_uuid != self._run:  # the devices of older runs are gone
                self._run, self._routes, self._failures = run_uuid, {}, {}
            if key in self._routes:
                return self._routes[key]
        try:
            route = self._resolve(run_uuid, device, command)
        except tango.DevFailed:
            return None  # not cached: asked again next time
        with self._lock:
            if run_uuid == self._run:
                self._routes.setdefault(key, route)
        return route

    def _resolve(self, run_uuid: str, device: str, command: str) -> giop.Route | None:
        """The route, or None when the device must be called through pytango for the run.
        A device that does not answer (``DevFailed``) is asked again on the next call."""
        proxy = self.proxies.get(run_uuid, device)
        info = proxy.command_query(command)
        arg_type, out_type = int(info.in_type), int(info.out_type)
        if out_type != int(tango.CmdArgType.DevEncoded) or arg_type not in giop.INTEGER_ARGS:
            logger.info("%s/%s: %s in, %s out: through pytango", device, command, info.in_type, info.out_type)
            return None
        if proxy.get_access_right() != tango.AccessControlType.ACCESS_WRITE:
            logger.info("%s: read-only access (Tango access control): frames through pytango", device)
            return None
        try:
            return giop.Route(giop.parse_ior(proxy.import_info().ior), arg_type)
        except tango.DevFailed as exc:  # no database, or not exported there
            logger.info("%s: no IOR (%s): frames through pytango", device, exc.args[0].desc if exc.args else exc)
        except giop.WireError as exc:
            logger.info("%s: frames through pytango (%s)", device, exc)
        return None

    def _wire_answered(self, device: str, command: str, count: bool = False) -> None:
        with self._lock:
            self._failures.pop((device, command), None)
            self.wire_calls += count

    def _wire_failed(self, run_uuid: str, device: str, command: str, route: giop.Route, exc: Exception) -> None:
        key = (device, command)
        with self._lock:
            if run_uuid != self._run or self._routes.get(key) is not route:
                return
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            if failures >= MAX_WIRE_FAILURES:
                self._routes[key] = None
            else:
                del self._routes[key]  # resolved again next time: a restarted server has a new IOR
        if failures >= MAX_WIRE_FAILURES:
            logger.warning("%s/%s: %d wire calls failed in a row (%s): pytango for this run", *key, failures, exc)
        else:
            logger.info("%s/%s: wire call failed (%s): through pytango", *key, exc)


def _dev_failed(errors: list[tuple[str, int, str, str]]) -> tango.DevFailed:
    stack = []
    for reason, severity, desc, origin in errors:
        e = tango.DevError()
        e.reason, e.desc, e.origin = reason, desc, origin
        e.severity = tango.ErrSeverity(min(severity, int(tango.ErrSeverity.PANIC)))
        stack.append(e)
    return tango.DevFailed(*stack)


def _command_failed(device: str, command: str) -> tuple[str, int, str, str]:
    """The outer entry a Tango client adds to a device's errors."""
    desc = f"Failed to execute command_inout on device {device}, command {command}"
    return ("API_CommandFailed", int(tango.ErrSeverity.ERR), desc, "FrameFetcher.fetch")


def _timeout(device: str, command: str) -> tuple[str, int, str, str]:
    return ("API_DeviceTimedOut", int(tango.ErrSeverity.ERR), f"Timeout on {command} of {device}", "FrameFetcher.fetch")
