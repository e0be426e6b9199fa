"""Typed async wrappers around the Lima2 control, receiver and processing devices.

Each wrapper keeps two proxies: one for commands (``device_timeout_ms``) and one for
the state poll (short timeout), so that a hung device delays neither. Database look-ups
run in a thread; schemas are cached and forgotten when the device reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import tango
import tango.asyncio

from ..core.errors import DeviceError, DeviceOffline, NotFound
from ..core.lima2 import DeviceState, processing_device_pattern, processing_rank
from ..server.daemon_work import DaemonWork
from .database import DATABASE, unreachable
from .errors import translate

logger = logging.getLogger(__name__)

T = TypeVar("T")

FrameGetter = Callable[[str, str, str, int], tuple[str, Any]]
"""(run uuid, processing device, getter command, frame index) -> (format, bytes), blocking;
raises ``DevFailed`` (:meth:`lima2_conductor.backend.frame_fetch.FrameFetcher.fetch`)."""


LAST_FRAMES = "last_frames"
"""The processing devices' attribute with the global index of their newest frame per source (JSON)."""

POLL_TIMEOUT_MS = 500
"""Deadline of a state or progress read: a device that does not answer is not waited for."""


async def make_proxy(name: str, timeout_ms: int) -> Any:
    """An asyncio ``DeviceProxy`` (created in a thread: construction talks to the DB)."""

    def build() -> Any:
        proxy = tango.DeviceProxy(name, green_mode=tango.GreenMode.Asyncio)
        proxy.set_timeout_millis(timeout_ms)
        return proxy

    return await asyncio.to_thread(build)


class BlockingProxies:
    """Blocking proxies for calls made in a Tango request thread (outside the event loop),
    one per device of the current run, made on first use."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self._lock = threading.Lock()
        self._run = ""
        self._proxies: dict[str, Any] = {}

    def get(self, run_uuid: str, name: str) -> Any:
        with self._lock:
            if run_uuid != self._run:  # the devices of older runs are gone
                self._run, self._proxies = run_uuid, {}
            proxy = self._proxies.get(name)
            if proxy is None:
                proxy = tango.DeviceProxy(name, green_mode=tango.GreenMode.Synchronous)
                proxy.set_timeout_millis(self.timeout_ms)
                self._proxies[name] = proxy
            return proxy


class Unsubscriber:
    """One daemon thread that ends event subscriptions: an unsubscription waits for
    Tango's event-callback lock, so nothing else waits for it, and a blocked one never
    holds up the process's exit.

    The proxies are kept for :data:`KEEP_S` after their unsubscription, as pytango keeps
    the callbacks: Tango's keep-alive thread may still be reconnecting an event channel
    through a proxy it found before, and a proxy freed under it crashes the process."""

    KEEP_S = 60.0
    HANG_S = 10.0
    """An unsubscription still going after this long is logged (the wait itself is
    Tango's, bounded by its own timeouts)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[list[tuple[Any, int]]] = queue.SimpleQueue()
        self._work = DaemonWork("unsubscribe", self._run)
        self._kept: collections.deque[tuple[float, list[tuple[Any, int]]]] = collections.deque()

    def submit(self, subscriptions: list[tuple[Any, int]]) -> None:
        self._work.handed()
        self._queue.put(subscriptions)

    def drain(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until every submitted unsubscription has ended
        (before the process exits: :mod:`lima2_conductor.server.daemon_work`)."""
        return self._work.drain(timeout)

    def _run(self) -> None:
        while True:
            try:
                batch = self._queue.get(timeout=self.KEEP_S / 4)
            except queue.Empty:
                batch = None
            for proxy, event_id in batch or []:
                hang = threading.Timer(self.HANG_S, _log_hang, (proxy, event_id, self.HANG_S))
                hang.daemon = True
                hang.start()
                try:
                    proxy.unsubscribe_event(event_id, green_mode=tango.GreenMode.Synchronous)
                except tango.DevFailed as exc:
                    # already ended: at exit, Tango ends them all (cppTango 10.1 may have
                    # destroyed its event consumer by then: API_EventConsumer)
                    if exc.args[0].reason in ("API_EventNotFound", "API_EventConsumer"):
                        logger.debug("event subscription %s already ended", event_id)
                    else:
                        logger.warning("ending event subscription %s: %s", event_id, exc)
                except Exception as exc:  # noqa: BLE001 - logged, the next one goes on
                    logger.warning("ending event subscription %s: %s", event_id, exc)
                finally:
                    hang.cancel()
            if batch is not None:
                self._work.finished()
            now = time.monotonic()
            if batch:
                self._kept.append((now, batch))
            while self._kept and now - self._kept[0][0] > self.KEEP_S:
                self._kept.popleft()


def _log_hang(proxy: Any, event_id: int, after_s: float) -> None:
    """Said once per unsubscription that has not ended in time (Tango's event-callback
    lock held elsewhere, a device that does not answer): the others wait behind it."""
    try:
        name = proxy.dev_name()
    except Exception:  # noqa: BLE001 - only for the message
        name = "?"
    logger.warning("ending event subscription %s of %s: still waiting after %.0f s", event_id, name, after_s)


UNSUBSCRIBER = Unsubscriber()


def _ignore_failure(future: asyncio.Future[Any]) -> None:
    """A proxy made in advance that failed is made again on first use."""
    if not future.cancelled():
        future.exception()


class TangoDevice:
    """Common part: proxies, error translation, acq_state, schema cache.

    A proxy is made once (in a thread: it asks the database) and kept; a caller whose
    deadline expires while it is being made does not cancel it, so that a slow database
    never leaves the device without a proxy.
    """

    def __init__(self, name: str, timeout_ms: int = 3000, poll_timeout_ms: int = POLL_TIMEOUT_MS) -> None:
        self.name = name
        self.timeout_ms = timeout_ms
        self.poll_timeout_ms = poll_timeout_ms
        self._proxies: dict[int, asyncio.Future[Any]] = {}
        self._watched: set[str] = set()
        self._subscriptions: list[tuple[Any, int]] = []  # (proxy, event id)
        self._generation = 0  # unwatch() count: a subscription begun before is ended
        self._read_lock = asyncio.Lock()
        self._schemas: dict[str, dict[str, Any]] = {}
        self._class_name: str | None = None

    async def _proxy_with(self, timeout_ms: int) -> Any:
        future = self._proxies.get(timeout_ms)
        if future is None or (future.done() and future.exception() is not None):
            future = self._proxies[timeout_ms] = asyncio.ensure_future(make_proxy(self.name, timeout_ms))
        return await asyncio.shield(future)

    async def proxy(self) -> Any:
        return await self._proxy_with(self.timeout_ms)

    async def poll_proxy(self) -> Any:
        return await self._proxy_with(self.poll_timeout_ms)

    async def connect(self) -> None:
        """Make the proxies now (while the database is surely there): the command proxy is
        awaited, the poll proxy is made meanwhile."""
        asyncio.ensure_future(self.poll_proxy()).add_done_callback(_ignore_failure)
        try:
            await self.proxy()
        except tango.DevFailed as exc:
            raise translate(exc, self.name, "connect") from None

    def reconnect(self) -> None:
        self._proxies.clear()
        self.unwatch()

    def unwatch(self) -> None:
        """End this device's event subscriptions, before its proxies are dropped; one
        still being made is ended as soon as it is made.

        A proxy freed with subscriptions unsubscribes in its destructor, which waits for
        Tango's event-callback lock; the garbage collector can free it inside an event
        callback, whose thread holds that lock: the process's event system would
        deadlock. So a device whose events are no longer wanted says so first (an
        unsubscription is local to this process: the device server is not asked)."""
        self._generation += 1
        subscriptions, self._subscriptions = self._subscriptions, []
        self._watched.clear()
        if subscriptions:
            UNSUBSCRIBER.submit(subscriptions)

    WATCHED: tuple[tuple[str, Any], ...] = (("acq_state", tango.EventType.CHANGE_EVENT),)

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (in the event loop) whenever the device pushes a change of state.

        Events only wake the poll early; the poll stays the liveness check. A device that
        pushes no event is polled as before (a failed subscription is only logged)."""
        generation = self._generation
        proxy = await self.proxy()

        async def callback(event: Any) -> None:
            wake()

        for attr, kind in self.WATCHED:
            if attr in self._watched:
                continue
            try:
                event_id = await proxy.subscribe_event(attr, kind, callback)
                if generation != self._generation:  # unwatched meanwhile
                    UNSUBSCRIBER.submit([(proxy, event_id)])
                    return
                self._watched.add(attr)
                self._subscriptions.append((proxy, event_id))
            except tango.DevFailed as exc:
                logger.info("%s: no %s events (%s); polled only", self.name, attr, exc.args[0].desc.strip())

    calls = 0
    """Remote calls made by every wrapper of this process (diagnostics: ``GetInfo``)."""

    async def _do(self, action: str, fn: Callable[[Any], Awaitable[T]], poll: bool = False) -> T:
        TangoDevice.calls += 1
        try:
            proxy = await (self.poll_proxy() if poll else self.proxy())
            return await fn(proxy)
        except (tango.DevFailed, TimeoutError) as exc:
            raise translate(exc, self.name, action) from None

    async def read(self, attr: str, poll: bool = False) -> Any:
        reply = await self._do(f"read {attr}", lambda p: p.read_attribute(attr), poll=poll)
        return reply.value

    async def write(self, attr: str, value: Any) -> None:
        try:
            await self._do(f"write {attr}", lambda p: p.write_attribute(attr, value))
        except TypeError:
            # pytango raises TypeError, not DevFailed, when writing to an offline device
            await self.ping()
            raise

    async def read_json(self, attr: str) -> dict[str, Any]:
        value = json.loads(await self.read(attr))
        if not isinstance(value, dict):
            raise DeviceError(f"{attr} is not a JSON object", self.name)
        return value

    async def acq_params(self) -> dict[str, Any]:
        return await self.read_json("acq_params")

    async def command(self, name: str, *args: Any) -> Any:
        return await self._do(name, lambda p: p.command_inout(name, *args))

    async def ping(self) -> None:
        await self._do("ping", lambda p: p.ping(), poll=True)

    async def read_many(self, attrs: list[str], poll: bool = True) -> list[Any]:
        """Several attributes in one call (one round trip instead of one per attribute).

        One at a time per device: concurrent ``read_attributes`` on one proxy from the
        executor's threads are not safe."""
        async with self._read_lock:
            replies = await self._do(f"read {', '.join(attrs)}", lambda p: p.read_attributes(attrs), poll=poll)
        for reply in replies:
            if reply.has_failed:
                raise DeviceError(f"read {reply.name} failed", self.name)
        return [reply.value for reply in replies]

    async def acq_state(self) -> DeviceState:
        return DeviceState(int(await self.read("acq_state", poll=True)))

    COUNTER = ""

    async def poll(self) -> tuple[DeviceState, int]:
        state, count = await self.read_many(["acq_state", self.COUNTER])
        try:
            return DeviceState(int(state)), int(count)
        except (TypeError, ValueError):
            raise DeviceError(f"acq_state {state!r} is not a Lima2 state", self.name) from None

    async def start(self) -> None:
        await self.command("Start")

    async def stop(self) -> None:
        await self.command("Stop")

    async def reset(self) -> None:
        await self.command("Reset")

    def forget_cache(self) -> None:
        self._schemas.clear()
        self._class_name = None

    async def _class_schema(self, class_name: str | None, attr: str) -> dict[str, Any]:
        key = f"{class_name}/{attr}"
        if key not in self._schemas:
            try:
                cls = class_name or await DATABASE.device_class(self.name)
                values = await DATABASE.class_attribute_property(cls, attr, "schema")
            except tango.DevFailed as exc:
                raise translate(exc, self.name, f"read {attr} schema") from None
            if not values:
                raise NotFound(f"no {attr} schema for class {cls} in the Tango database", self.name)
            self._schemas[key] = json.loads(values[0])
        return self._schemas[key]

    async def acq_schema(self) -> dict[str, Any]:
        return await self._class_schema(None, "acq_params")


class TangoControl(TangoDevice):
    COUNTER = "nb_frames_acquired"

    def __init__(self, name: str, timeout_ms: int = 3000, poll_timeout_ms: int = POLL_TIMEOUT_MS) -> None:
        super().__init__(name, timeout_ms, poll_timeout_ms)
        self._blocking = BlockingProxies(timeout_ms)

    # Blocking variants, for a Tango request thread or a worker thread: a software trigger
    # and the wait for its frame never queue behind the event loop.
    def trigger_now(self) -> None:
        try:
            self._blocking.get("", self.name).command_inout("Trigger")
        except tango.DevFailed as exc:
            raise translate(exc, self.name, "Trigger") from None

    def count_now(self) -> int:
        try:
            return int(self._blocking.get("", self.name).read_attribute(self.COUNTER).value)
        except tango.DevFailed as exc:
            raise translate(exc, self.name, f"read {self.COUNTER}") from None

    async def prepare(self, uuid: str, acq_params: dict[str, Any]) -> None:
        await self.write("acq_params", json.dumps(acq_params))
        await self.command("Prepare", uuid)

    async def trigger(self) -> None:
        await self.command("Trigger")

    async def close(self) -> None:
        await self.command("Close")

    async def nb_frames_acquired(self) -> int:
        return int(await self.read("nb_frames_acquired", poll=True))

    async def det_info(self) -> dict[str, Any]:
        return await self.read_json("det_info")

    async def det_status(self) -> dict[str, Any]:
        return await self.read_json("det_status")

    async def det_capabilities(self) -> dict[str, Any]:
        return await self.read_json("det_capabilities")


class TangoReceiver(TangoDevice):
    COUNTER = "nb_frames_xferred"

    async def prepare(self, uuid: str, acq_params: dict[str, Any], proc_params: dict[str, Any]) -> None:
        await self.ping()  # a write to an offline device does not raise DevFailed
        await self.write("acq_params", json.dumps(acq_params))
        await self.write("proc_params", json.dumps(proc_params))
        await self.command("Prepare", uuid)

    async def nb_frames_xferred(self) -> int:
        return int(await self.read("nb_frames_xferred", poll=True))

    async def last_error(self) -> str:
        return str(await self.read("last_error", poll=True))

    async def pipelines(self) -> list[str]:
        return list(await self.read("pipelines") or [])

    async def erase_pipeline(self, uuid: str) -> None:
        await self.command("erasePipeline", uuid)

    async def proc_schema(self, class_name: str) -> dict[str, Any]:
        return await self._class_schema(class_name, "proc_params")

    async def proc_version(self, class_name: str) -> str:
        """Not cached: a Lima2 server rewrites it when it starts, and clients check it
        before choosing a class."""
        try:
            values = await DATABASE.class_property(class_name, "Version")
        except tango.DevFailed as exc:
            raise translate(exc, self.name, "read Version") from None
        if not values or not values[0].strip():
            raise NotFound(f"no Version for class {class_name} in the Tango database", self.name)
        return values[0].strip()

    async def proc_params(self) -> dict[str, Any]:
        return await self.read_json("proc_params")


class TangoProcessing(TangoDevice):
    """A processing device (no acq_state): counters, finished flag, frames, reduced data."""

    WATCHED = (("is_finished", tango.EventType.DATA_READY_EVENT), ("last_error", tango.EventType.DATA_READY_EVENT))

    def __init__(self, name: str, timeout_ms: int = 3000, uuid: str = "", fetch: FrameGetter | None = None) -> None:
        super().__init__(name, timeout_ms)
        self.uuid = uuid
        self._fetch = fetch

    async def progress_counters(self) -> dict[str, int]:
        return dict(json.loads(await self.read("progress_counters", poll=True)))

    async def is_finished(self) -> bool:
        return bool(await self.read("is_finished", poll=True))

    async def progress(self) -> tuple[dict[str, int], bool]:
        counters, finished = await self.read_many(["progress_counters", "is_finished"])
        return dict(json.loads(counters)), bool(finished)

    async def last_error(self) -> str:
        return str(await self.read("last_error", poll=True))

    async def pop(self, getter: str) -> tuple[str, bytes]:
        return tuple(await self.command(getter))  # type: ignore[return-value]

    async def get_frame(self, command: str, frame_idx: int) -> tuple[str, bytes]:
        """A frame getter's answer, passed through: by the blocking ``fetch`` given (in a
        worker thread), else through this wrapper's proxy."""
        if self._fetch is None:
            return tuple(await self.command(command, int(frame_idx)))  # type: ignore[return-value]
        TangoDevice.calls += 1
        try:
            return await asyncio.to_thread(self._fetch, self.uuid, self.name, command, int(frame_idx))  # type: ignore[return-value]
        except (tango.DevFailed, TimeoutError) as exc:
            raise translate(exc, self.name, command) from None

    async def last_frames(self) -> dict[str, int]:
        return dict(json.loads(await self.read(LAST_FRAMES, poll=True)))

    async def frame_info(self, attr: str) -> dict[str, Any]:
        return await self.read_json(attr)


async def find_processing(
    uuid: str, nb_receivers: int, timeout_ms: int = 3000, wait_s: float = 3.0, fetch: FrameGetter | None = None
) -> list[TangoProcessing]:
    """The processing devices of ``uuid`` from the Tango DB, sorted by rank; their frame
    getters are called by ``fetch`` when given.

    Receivers export them during their Prepare; wait up to ``wait_s`` for all of them.
    """

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        try:
            found = await DATABASE.exported(processing_device_pattern(uuid))
        except tango.DevFailed:
            raise unreachable() from None
        names = sorted(found, key=processing_rank)
        if len(names) >= nb_receivers:
            devices = [TangoProcessing(n, timeout_ms, uuid, fetch) for n in names[:nb_receivers]]
            while True:  # a device just exported may not accept connections yet
                try:
                    await asyncio.gather(*(d.connect() for d in devices))
                    return devices
                except DeviceOffline:
                    if loop.time() > deadline:
                        raise
                    for d in devices:
                        d.reconnect()
                    await asyncio.sleep(0.1)
        if loop.time() > deadline:
            raise NotFound(f"found {len(names)} processing device(s) for {uuid}, expected {nb_receivers}")
        await asyncio.sleep(0.1)
