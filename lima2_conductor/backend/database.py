"""The Tango database, asked without freezing the conductor when it hangs.

PyTango's ``tango.Database`` methods (``get_device_exported``,
``get_class_property``, ``put_device_attribute_property``...) keep the GIL for the whole
call (PyTango 10.1 and 10.3, ``docs/upstream/pytango-database-gil.rst``). A database
that does not answer (a stopped DataBaseds, a MariaDB waiting on a lock) then freezes
every thread of the process, the event loop included, for the minute or more that
omniORB takes to give up: the conductor stops answering even ``State``, although the
call was made in a worker thread.

The database is a Tango device, and its documented commands (``DbGetDeviceExportedList``,
``DbGetClassProperty``...) are what those methods send. Sent with
``Database.command_inout``, the call waits with the GIL released, as every
``DeviceProxy`` call does. So the conductor sends them so, from one thread of its own,
each with a deadline: a hung database holds that thread only, and every caller gets
``DEVICE_OFFLINE`` naming ``TANGO_HOST`` at its deadline. A request that waits for the
thread past its deadline is dropped, never sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import tango

from ..core.errors import DeviceOffline
from ..server.daemon_work import DaemonWork

DEADLINE_S = 2.0
"""How long a caller waits for the database (a healthy one answers in milliseconds)."""


def tango_host() -> str:
    return os.environ.get("TANGO_HOST", "?")


def unreachable() -> DeviceOffline:
    return DeviceOffline(f"the Tango database ({tango_host()}) is unreachable")


class _Worker:
    """Calls run in order by one daemon thread (:class:`DaemonWork`); a call cancelled
    before its turn is skipped, never made."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = queue.SimpleQueue()
        self._work = DaemonWork(name, self._run)

    def submit(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._work.handed()
        self._queue.put((call, future))
        return future

    def idle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until every submitted call is done or skipped."""
        return self._work.drain(timeout)

    def _run(self) -> None:
        while True:
            call, future = self._queue.get()
            try:
                if future.set_running_or_notify_cancel():  # else its caller gave up before its turn
                    try:
                        future.set_result(call())
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        future.set_exception(exc)
            finally:
                self._work.finished()


class TangoDatabase:
    """The Tango database's commands, one at a time in a thread of their own."""

    def __init__(self, deadline_s: float = DEADLINE_S) -> None:
        self.deadline_s = deadline_s
        self._worker = _Worker("tango-database")
        self._lock = threading.Lock()
        self._client: Any = None

    def _database(self) -> Any:
        """The device server's own client of the database, or one of this process's."""
        with self._lock:
            if self._client is None:
                util = _server_util()
                self._client = util.get_database() if util is not None else tango.Database()
            return self._client

    async def command(self, name: str, arg: Any = None) -> Any:
        """Database command ``name`` with ``arg``; ``DEVICE_OFFLINE`` when the database
        does not answer by the deadline or cannot be reached."""

        def call() -> Any:
            db = self._database()
            return db.command_inout(name) if arg is None else db.command_inout(name, arg)

        future = asyncio.wrap_future(self._worker.submit(call))
        try:
            return await asyncio.wait_for(future, self.deadline_s)
        except TimeoutError:
            raise unreachable() from None
        except tango.DevFailed as exc:
            # the client library's own errors (API_*: no connection, no answer) mean the
            # database is out of reach; its device's errors (DB_*) are answers
            if isinstance(exc, (tango.ConnectionFailed, tango.CommunicationFailed)) or any(
                str(err.reason).startswith("API_") for err in exc.args
            ):
                raise unreachable() from None
            raise

    async def check(self) -> None:
        """``DEVICE_OFFLINE`` naming ``TANGO_HOST`` when the database does not answer."""
        await self.command("State")

    async def exported(self, pattern: str) -> list[str]:
        """Names of the exported devices matching ``pattern``."""
        return [str(name) for name in await self.command("DbGetDeviceExportedList", pattern)]

    async def device_class(self, device: str) -> str:
        """The class of ``device`` as the database has it."""
        _, info = await self.command("DbGetDeviceInfo", device)
        return str(info[7])

    async def class_property(self, class_name: str, prop: str) -> list[str]:
        """The values of class property ``prop`` (empty when it is not defined)."""
        reply = list(await self.command("DbGetClassProperty", [class_name, prop]))
        return _values(reply[2:], [prop]).get(prop, [])

    async def class_attribute_property(self, class_name: str, attr: str, prop: str) -> list[str]:
        """The values of property ``prop`` of attribute ``attr`` of class ``class_name``."""
        reply = list(await self.command("DbGetClassAttributeProperty2", [class_name, attr]))
        i, found = 2, []
        for _ in range(int(reply[1])):
            name, nb_props = reply[i], int(reply[i + 1])
            i += 2
            props = {}
            for _ in range(nb_props):
                nb_values = int(reply[i + 1])
                props[reply[i]] = reply[i + 2 : i + 2 + nb_values]
                i += 2 + nb_values
            if name == attr:
                found = props.get(prop, [])
        return [str(v) for v in found]

    async def put_device_attribute_property(self, device: str, attr: str, prop: str, values: list[str]) -> None:
        if _file_database():  # a file of the server's own, no database device to ask
            db = self._database()
            await asyncio.to_thread(db.put_device_attribute_property, device, {attr: {prop: values}})
            return
        await self.command("DbPutDeviceAttributeProperty2", [device, "1", attr, "1", prop, str(len(values)), *values])

    def idle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until no database call is running: before the
        process exits, as a thread returning from Tango into a finalised interpreter
        aborts the process."""
        return self._worker.idle(timeout)


def _values(flat: list[str], names: list[str]) -> dict[str, list[str]]:
    """``[name, nb_values, value...]`` repeated, as the database's property commands reply."""
    out: dict[str, list[str]] = {}
    i = 0
    while i + 1 < len(flat):
        name, nb_values = flat[i], int(flat[i + 1])
        out[name] = [str(v) for v in flat[i + 2 : i + 2 + nb_values]]
        i += 2 + nb_values
    return {k: v for k, v in out.items() if k in names}


def _file_database() -> bool:
    """True in a device server whose database is a file (``-file=``)."""
    util = _server_util()
    try:
        return util is not None and bool(util.get_database().get_file_name())
    except tango.DevFailed:  # what it answers when the database is not a file
        return False


def _server_util() -> Any:
    """The running device server's ``Util`` when it has a database, None otherwise."""
    try:
        util = tango.Util.instance(False)
        return util if util.get_database() is not None else None
    except tango.DevFailed:
        return None


DATABASE = TangoDatabase()
"""The process's one client (one thread, one request at a time)."""


async def check_database() -> None:
    """``DEVICE_OFFLINE`` naming ``TANGO_HOST`` when the Tango database does not answer."""
    await DATABASE.check()
