"""A small asyncio device that records in which thread each standard method ran, and a
switch for the request-thread path of devices started in a fresh interpreter (tests only).

The switch (``LIMA2_CONDUCTOR_REQUEST_THREAD_HOOKS``) is read when
:mod:`lima2_conductor.server.request_thread` is imported, so it applies to a device server started
with the ``spawn`` method (a new interpreter with this process's environment), not to the
classes already made in this process.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import threading
from collections.abc import Iterator
from typing import Any

from tango import DevState, GreenMode
from tango.server import Device, attribute, command

from lima2_conductor.server.request_thread import SWITCH, in_request_thread, request_thread_path

PATHS = {"request-thread": "1", "event-loop": "0"}
"""The two paths, by test id, and the switch's value for each."""


@contextlib.contextmanager
def spawned_servers(path: str) -> Iterator[None]:
    """Device servers started meanwhile (``DeviceTestContext(process=True)``) run in a fresh
    interpreter with the request-thread switch set for ``path``."""
    method = multiprocessing.get_start_method()
    before = os.environ.get(SWITCH)
    multiprocessing.set_start_method("spawn", force=True)
    os.environ[SWITCH] = PATHS[path]
    try:
        yield
    finally:
        multiprocessing.set_start_method(method, force=True)
        if before is None:
            os.environ.pop(SWITCH, None)
        else:
            os.environ[SWITCH] = before


class ThreadProbe(Device):
    """Says where ``always_executed_hook``, ``read_attr_hardware``, ``dev_state`` and
    ``dev_status`` ran: "loop" (the event loop's thread) or "request" (a Tango thread)."""

    green_mode = GreenMode.Asyncio

    async def init_device(self) -> None:
        await super().init_device()
        self.loop_thread = threading.get_ident()
        self.seen: dict[str, set[str]] = {}
        self.set_state(DevState.ON)
        self.set_status("probing")

    def _note(self, name: str) -> None:
        where = "loop" if threading.get_ident() == self.loop_thread else "request"
        self.seen.setdefault(name, set()).add(where)

    @in_request_thread
    def always_executed_hook(self) -> None:
        self._note("always_executed_hook")

    @in_request_thread
    def read_attr_hardware(self, attr_list: list[int]) -> None:
        self._note("read_attr_hardware")

    @in_request_thread
    def dev_state(self) -> DevState:
        self._note("dev_state")
        return self.get_state()

    @in_request_thread
    def dev_status(self) -> str:
        self._note("dev_status")
        return self.get_status()

    @attribute(dtype=int, read_green_mode=False)
    def value(self) -> int:
        return 42

    @command(dtype_out=str)
    async def Seen(self) -> str:
        """{method: [where it ran]} since the last call, and the path the server reports."""
        seen, self.seen = self.seen, {}
        out: dict[str, Any] = {name: sorted(where) for name, where in seen.items()}
        return json.dumps({"seen": out, "path": request_thread_path()})


HONOURS_THE_MARK = {">=9.5,<10.4": True}
"""PyTango versions whose ``tango/server.py`` was read (9.5.1, 10.0.0, 10.0.4, 10.1.2,
10.3.1): does it leave a standard method marked ``__access_wrapped__`` alone? Extend it
when a new PyTango is read."""


def expected_mark_honoured(version: str) -> bool | None:
    """What the table says of ``version``; None when it is not in the table."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    for spec, honoured in HONOURS_THE_MARK.items():
        if Version(version) in SpecifierSet(spec):
            return honoured
    return None
