"""Frames asked of processing devices from a Tango request thread (``GetFrame``).

The conductor serves ``GetFrame`` in the calling Tango thread: a frame whose place the
cached counters know is asked of its processing device at once, through a blocking
``DeviceProxy``, and the device's DevEncoded is passed on as it came. omniORB carries the
call, with everything it is configured for: every address a multi-homed device publishes,
unix sockets, SSL, message-size limits.

pytango copies a DevEncoded once more than needed on its way in (the report is
``docs/upstream/devencoded-extract-copy.rst``); a client that cannot afford the conductor's
hop and that copy per frame asks the conductor's ``Lookup`` where a frame is and calls that
device directly.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import tango

from .tango_devices import LAST_FRAMES, POLL_TIMEOUT_MS, BlockingProxies


class FrameFetcher:
    """Frame getters of the current run's processing devices, called from any thread."""

    def __init__(self, timeout_ms: int, poll_timeout_ms: int = POLL_TIMEOUT_MS) -> None:
        self.proxies = BlockingProxies(timeout_ms)
        self.poll_proxies = BlockingProxies(poll_timeout_ms)  # progress reads: a hung device is not waited for
        self._lock = threading.Lock()
        self.calls = 0
        self.failures = 0

    def fetch(self, run_uuid: str, device: str, command: str, frame_idx: int) -> tuple[str, Any]:
        """``command(frame_idx)`` on ``device``: (format, bytes); raises ``DevFailed``."""
        try:
            result = self.proxies.get(run_uuid, device).command_inout(command, frame_idx)
        except tango.DevFailed:
            with self._lock:
                self.failures += 1
            raise
        with self._lock:
            self.calls += 1
        return tuple(result)  # type: ignore[return-value]

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
        """Frames relayed from request threads, and calls that the devices refused or
        that did not reach them (those went on to the event loop's full path)."""
        with self._lock:
            return {"relayed": self.calls, "failed": self.failures}

    def close(self) -> None:
        """Nothing to release: the proxies go with the run."""
