"""The device's monitor: the only task that talks to the Lima2 devices periodically, and
the publisher of what the system hands it.

Each tick has the system observe its devices; the system hands every new snapshot to
:meth:`Monitor.show` (its one callback), which keeps it as the device's view and pushes
change events for what changed (from the event loop: never from another thread). The
monitor writes no state of the system. The period is ``progress_event_period_ms`` while a
run is active and 100 ms otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

import numpy
from tango import DevState

from ..core.devencoded import decode_frame
from ..core.errors import ConductorError
from ..core.system import AcquisitionSystem
from ..core.view import ConductorView
from ..server.pushed_values import PushedValues, require_loop_thread
from .settings import SETTINGS
from .specs import STATE_ATTRS, VIEW_ATTRS


class PublishingDevice(Protocol):
    """What the monitor uses of the conductor device
    (:class:`lima2_conductor.device.conductor.Lima2Conductor`): the system it watches and
    what it publishes through."""

    system: AcquisitionSystem
    image: Any
    image_idx: int
    settings: dict[str, Any]
    image_period_ms: int
    progress_event_period_ms: int

    def set_state(self, state: DevState) -> None: ...

    def set_status(self, status: str) -> None: ...

    def push_change_event(self, name: str, *args: Any) -> None: ...


logger = logging.getLogger(__name__)
IDLE_PERIOD_S = 0.1
MIN_GAP_S = 0.004
CPU_BUDGET = 0.12
"""The poll's budget, as a fraction of one core: when a tick costs more CPU than this
share of the period (many receivers, a slow machine), the period stretches. Device events
(state changes, end of processing) still wake the monitor at once."""
MAX_PERIOD_S = 0.5
"""The budget never stretches the period beyond this: progress at least twice a second,
and a hung device (whose calls make ticks long, while the process's CPU counts other
work too) is still found offline within a few seconds."""
IMAGE_READY = "last_image_ready"
BY_NAME = {spec.name: spec for spec in VIEW_ATTRS}


class Monitor:
    def __init__(self, device: PublishingDevice, remote_calls: Callable[[], int] = lambda: 0) -> None:
        self.device = device
        self.remote_calls = remote_calls  # the backend's count of remote calls (diagnostics)
        self.view = ConductorView(tango_state="INIT", status="Initialising")  # what the device serves
        self.observed = False
        self.ticks = 0
        self.tick_time_s = 0.0
        self.tick_cpu_s = 0.0  # CPU of a tick (moving average)
        self.period_s = IDLE_PERIOD_S
        self.events = 0
        self._pushed: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._image: asyncio.Task[None] | None = None  # the last_image refresh under way
        self._image_at = 0.0
        self._image_run = ""
        # scalars only: Tango's polling buffer cannot hold an empty spectrum (spectra,
        # which change rarely, are read live)
        self.values = PushedValues(device, [*(spec.name for spec in VIEW_ATTRS if not spec.max_dim_x), IMAGE_READY])

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    def stop(self) -> list[asyncio.Task[None]]:
        """Cancel the loop and the live image fetch, without waiting for them (an Init
        never waits on a tick); the tasks, which end on their own."""
        tasks = [t for t in (self._task, self._image) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        return tasks

    def stats(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "mean_tick_ms": 1000 * self.tick_time_s / max(1, self.ticks),
            "tick_cpu_ms": 1000 * self.tick_cpu_s,
            "period_ms": 1000 * self.period_s,
            "remote_calls": self.remote_calls(),
            "events_pushed": self.events,
        }

    # -- the loop --------------------------------------------------------------------------
    async def _loop(self) -> None:
        device = self.device
        system = device.system
        while True:
            t0, cpu0 = time.monotonic(), time.process_time()
            try:
                self.values.serve_from_buffer(self._current)
                await system.poll(grace=self.period_s)  # a device slower than that is taken next time
                self._refresh_image()  # its own task: a tick never waits on a frame fetch
            except asyncio.CancelledError:
                raise
            except Exception:  # the monitor never dies
                logger.error("monitor tick failed: %s", traceback.format_exc())
            spent, cpu = time.monotonic() - t0, time.process_time() - cpu0
            self.ticks += 1
            self.tick_time_s += spent
            self.tick_cpu_s = cpu if self.ticks == 1 else 0.8 * self.tick_cpu_s + 0.2 * cpu
            period = device.progress_event_period_ms / 1000 if system.running else IDLE_PERIOD_S
            self.period_s = max(period, min(self.tick_cpu_s / CPU_BUDGET, MAX_PERIOD_S))
            await self._wait(self.period_s - spent)

    def _current(self, name: str) -> Any:
        """The value a buffered attribute has now."""
        device = self.device
        return device.image_idx if name == IMAGE_READY else BY_NAME[name].read(self.view)

    async def _wait(self, delay: float) -> None:
        """Sleep until the next tick, or less when a device reports a change (events are
        coalesced: ticks are at least ``MIN_GAP_S`` apart)."""
        await self.device.system.news(delay, MIN_GAP_S)

    # -- events ---------------------------------------------------------------------------
    def _push(self, name: str, value: Any) -> None:
        previous = self._pushed.get(name, self)
        if previous is self or previous != value:
            self._pushed[name] = value
            self.events += 1
            if name in ("State", "Status"):
                self.device.push_change_event(name)
            else:
                self.values.push(name, value)

    def show(self, view: ConductorView) -> None:
        """The system's callback: ``view`` is the device's view from now on; once the
        devices were observed, State and Status follow it and its changes are pushed."""
        require_loop_thread("a new view")
        self.view = view
        self.observed = self.observed or view.observed
        if self.observed:
            self.device.set_state(DevState.names[view.tango_state])
            self.device.set_status(view.status)
            self.publish()

    def publish(self) -> None:
        """Push change events for every attribute whose value changed: progress and data
        first, the states last, so that a client told that a run ended already has its
        final counts."""
        view = self.view
        for spec in VIEW_ATTRS:
            if spec.name not in STATE_ATTRS:
                self._push(spec.name, spec.read(view))
        for spec in VIEW_ATTRS:
            if spec.name in STATE_ATTRS:
                self._push(spec.name, spec.read(view))
        self._push("State", view.tango_state)
        self._push("Status", view.status)

    def publish_settings(self) -> None:
        for s in SETTINGS:
            self._push(s.name, self.device.settings[s.key])

    # -- live image -------------------------------------------------------------------------
    def _refresh_image(self) -> None:
        """Start fetching the newest processed frame (in a task of its own, never awaited
        by a tick: a fetch from a slow or half-reachable host would stall progress), at
        most every ``image_period_ms`` while running and once more when the run has
        ended (so that it ends at the run's last frame); one fetch at a time."""
        device = self.device
        system = device.system
        run = system.run
        if run is None or run.progress.nb_frames_processed == 0:
            return
        if self._image is not None and not self._image.done():
            return  # decided again once this one is over (the final image is not skipped)
        now = time.monotonic()
        if system.running:
            if now - self._image_at < device.image_period_ms / 1000:
                return
        elif self._image_run == run.uuid:
            return  # the final image of this run is already there
        else:
            self._image_run = run.uuid
        self._image_at = now
        self._image = asyncio.ensure_future(self._fetch_image())

    async def _fetch_image(self) -> None:
        device = self.device
        try:
            frame, idx = decode_frame(await device.system.get_frame(-1))
        except (ConductorError, ValueError) as exc:  # a live view is best effort
            logger.debug("last_image: %s", exc)
            return
        except Exception:  # noqa: BLE001 - a task of its own: nobody else would see it
            logger.error("last_image refresh failed: %s", traceback.format_exc())
            return
        if idx != device.image_idx:
            device.image = frame[0].astype(numpy.float32)
            device.image_idx = int(idx)
            require_loop_thread("push of last_image")
            device.push_change_event("last_image", device.image)
            self._push(IMAGE_READY, device.image_idx)
