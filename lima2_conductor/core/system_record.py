"""What the acquisition system owns, and the only ways it changes.

The system owns its run state, its run, its errors and its history; device states are
observed (:mod:`.observer`) and the system state is derived from them. The run state moves
through the state machine only (:meth:`SystemRecord.transition`), and each change the
system makes ends in a new snapshot (``ConductorView``, ``core.view``) handed to whoever
publishes it (:meth:`SystemRecord.publish_to`: the Tango device). The observer and the
preparation never change any of it: they return what they found, and the system applies it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from . import state_machine
from .background import Background
from .claim import Claim
from .detector import DetectorCache
from .errors import ConductorError
from .lima2 import DeviceState
from .observer import Observer
from .pipeline import RunPipeline
from .ports import DatabaseCheck, Ports, ProcessingFinder
from .preparation import Preparation
from .progress import Progress
from .run import Run
from .state import RunState, SystemState
from .thread_rules import require_loop_thread
from .topology import Topology
from .view import ConductorView, snapshot

logger = logging.getLogger(__name__)
MAX_ERRORS = 50
ViewCallback = Callable[[ConductorView], None]


class SystemRecord:
    """The state of one acquisition system, and its parts (the observer, the cached
    detector information, the background work); the base of
    :class:`~lima2_conductor.core.system.AcquisitionSystem`."""

    def __init__(
        self,
        ports: Ports,
        topology: Topology,
        find_processing: ProcessingFinder,
        clock: Callable[[], float],
        check_database: DatabaseCheck | None,
    ) -> None:
        self.ports = ports
        self.control = ports.control
        self.receivers = ports.receivers
        self.devices = ports.devices
        self.timeout_s = ports.timeout_s
        self.poll_timeout_s = ports.poll_timeout_s
        self.topology = topology
        self.find_processing = find_processing
        self.clock = clock
        self.check_database = check_database
        self.run_state = RunState.IDLE
        self.run: Run | None = None
        self.errors: list[str] = []
        self.history: list[str] = []
        self.timings: dict[str, Any] = {}
        self.detector = DetectorCache()
        self.background = Background()
        self.observer = Observer(ports, self.background, clock)
        self._claim: Claim | None = None  # the command that holds the run state
        self._stops = 0  # Stop fan-outs under way
        self._on_view: ViewCallback | None = None

    # -- derived views ------------------------------------------------------------
    @property
    def device_states(self) -> dict[str, DeviceState]:
        return self.observer.device_states

    @property
    def system_state(self) -> SystemState:
        return SystemState.from_device_states(list(self.device_states.values()))

    @property
    def running(self) -> bool:
        return self.run_state.active

    @property
    def failed(self) -> bool:
        return self.run_state == RunState.FAULT

    @property
    def uuid(self) -> str:
        return self.run.uuid if self.run else ""

    @property
    def progress(self) -> Progress:
        return self.run.progress if self.run else Progress()

    @property
    def pipeline(self) -> RunPipeline | None:
        return self.run.pipeline if self.run else None

    @property
    def busy(self) -> bool:
        """A command is under way whose outcome the run tracking must not anticipate."""
        return self._claim is not None or self._stops > 0

    @property
    def last_error(self) -> str:
        return self.errors[-1] if self.errors else ""

    def offline_devices(self) -> list[str]:
        return self.observer.offline_devices()

    def check(self, command: str) -> RunState | None:
        """``OperationNotAllowed`` unless ``command`` is allowed now; its next state
        (``None``: the state stays as it is)."""
        return state_machine.check(self.run_state, command)

    def allows(self, command: str) -> bool:
        """``command`` is allowed now (the device's ``is_allowed`` and settings)."""
        return state_machine.allowed(self.run_state, command)

    # -- changes ------------------------------------------------------------------------
    def transition(self, trigger: str) -> bool:
        """Move the run state through the state machine: a command (``OperationNotAllowed``
        unless allowed; False for an allowed no-op) or an observation (a transition the
        table lacks is a bug: ``ValueError``)."""
        require_loop_thread("a run state change")
        if trigger in state_machine.COMMANDS:
            new = state_machine.check(self.run_state, trigger)
            if new is None:
                return False
        else:
            new = state_machine.next_state(self.run_state, trigger)
        if new != self.run_state:
            logger.info("run state %s -> %s (%s)", self.run_state.value, new.value, trigger)
            self.run_state = new
        return True

    def record_error(self, message: str) -> None:
        require_loop_thread("an error record")
        logger.error(message)
        self.errors.append(message)
        del self.errors[:-MAX_ERRORS]
        self.note(message)

    def record_all(self, errors: Sequence[ConductorError]) -> None:
        for e in errors:
            self.record_error(str(e))

    def note(self, message: str) -> None:
        """One line of history (``GetInfo``), with the wall-clock time."""
        require_loop_thread("a history line")
        self.history.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}")
        del self.history[:-MAX_ERRORS]

    def replace_run(self, run: Run | None) -> None:
        """``run`` becomes the current run; the subscriptions of the one it replaces end."""
        require_loop_thread("a run change")
        if self.run is not None and self.run is not run:
            for p in self.run.processing:
                p.unwatch()
        self.run = run

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Background work whose task is kept (and whose failure is logged)."""
        return self.background.spawn(coro)

    def preparation(self) -> Preparation:
        """A new preparation of a run over this system's devices."""
        return Preparation(
            self.ports, self.topology, self.find_processing, self.observer, self.clock, self.check_database
        )

    async def news(self, delay: float, min_gap: float) -> None:
        """Wait for the next tick: ``delay``, or less when a device reports a change."""
        await self.observer.news(delay, min_gap)

    # -- the snapshot ---------------------------------------------------------------------
    def publish_to(self, callback: ViewCallback | None) -> None:
        """``callback`` gets every new snapshot (the one way the device learns of a change)."""
        self._on_view = callback

    def publish(self) -> None:
        """Hand a new snapshot to the callback (none is made while nobody listens)."""
        require_loop_thread("a snapshot")
        if self._on_view is None:
            return
        self._on_view(
            snapshot(
                self.run_state,
                self.run,
                self.device_states,
                self.errors,
                self.detector,
                [r.name for r in self.receivers],
                self.topology.name,
                self.observer.observed,
            )
        )
