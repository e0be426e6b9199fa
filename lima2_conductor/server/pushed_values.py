"""Attributes whose change events carry their value, read by clients from Tango's
polling buffer.

An event pushed with a value (``push_change_event(name, value)``) sets the value of the
attribute's server-side object, fires, then clears the value's flag. A C++ server takes
the device's lock for the push, and its requests take it too. PyTango's asyncio servers
do not serialise requests: a client read in a request thread sets the value in the same
object and then checks the flag, and a push from the event loop landing in between leaves
the read without a value (``API_AttrValueNotSet``, now and then while pushes run). A client that takes a failed read for a dead device (lima2-client marks
a device OFFLINE on one failed ``acq_state`` read and aborts the run) sees a crash that
never happened.

So the attributes pushed with a value are polled "externally triggered" (period 0: Tango
never reads them itself), and each push first fills the polling buffer. A client read is
then answered from the buffer and never touches the object that the push uses. Every
change of such an attribute must go through :meth:`PushedValues.push`, since the buffer is
what clients read. (A client that asks for the device itself as source, ``DevSource.DEV``,
bypasses the buffer and the protection.) A push from any thread but the event loop's
raises :class:`~lima2_conductor.core.thread_rules.WrongThread` instead of racing the
others (:mod:`lima2_conductor.core.thread_rules`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from tango import DevFailed, TimedAttrData, Util

from ..core.thread_rules import require_loop_thread

logger = logging.getLogger(__name__)


class PushedValues:
    """The attributes ``names`` of ``device``, pushed with their values from the event loop."""

    def __init__(self, device: Any, names: Iterable[str]) -> None:
        self.device = device
        self.names = tuple(names)
        self.buffered: set[str] = set()
        self.decided = False  # buffered, or given up (then read live)

    def serve_from_buffer(self, current: Callable[[str], Any]) -> bool:
        """Poll the attributes externally and fill the buffer with ``current(name)``; once
        the server has started (Tango refuses polling changes before). True when done or
        given up (the attributes are then read live), False when it is too early (call
        again later)."""
        if self.decided:
            return True
        if Util.instance().is_svr_starting():
            return False
        self.decided = True
        device = self.device
        admin = Util.instance().get_dserver_device()
        try:
            values = {name: current(name) for name in self.names}
            for name in self.names:
                try:
                    admin.add_obj_polling(([0], [device.get_name(), "attribute", name]), False)
                except DevFailed as exc:
                    if exc.args[0].reason != "API_AlreadyPolled":  # polling is kept across Init
                        raise
                # at once: until the buffer has a value, a read of the attribute fails
                device.fill_attr_polling_buffer(name, TimedAttrData(values[name]))
                self.buffered.add(name)
        except Exception as exc:  # noqa: BLE001 - reads stay live, the device keeps working
            reason = exc.args[0].desc if isinstance(exc, DevFailed) else repr(exc)
            logger.warning("%s: reads served by the attributes, not a buffer: %s", device.get_name(), reason)
            self.buffered.clear()
            for name in self.names:
                try:
                    admin.rem_obj_polling([device.get_name(), "attribute", name], False)
                except DevFailed:
                    pass
        return True

    def push(self, name: str, value: Any) -> None:
        """Publish a new value: into the buffer first (a client woken by the event reads
        this value), then as a change event. From the event loop's thread only. When the
        buffer refuses it (its polling was removed from outside, by an operator), the
        attribute is read live from then on, and the event still goes out."""
        require_loop_thread(f"push of {name}")
        if name in self.buffered:
            try:
                self.device.fill_attr_polling_buffer(name, TimedAttrData(value))
            except DevFailed as exc:
                self.buffered.discard(name)
                logger.warning("%s/%s: read live from now on: %s", self.device.get_name(), name, exc.args[0].desc)
        self.device.push_change_event(name, value)
