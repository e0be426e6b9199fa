"""What the parts of the acquisition system need of it, as protocols.

The observer, the preparation and the snapshot work on the
:class:`~lima2_conductor.core.system.AcquisitionSystem` that owns them. Typing them against
these protocols instead of the class keeps the imports of ``core`` one way: ``system``
imports its parts, no part imports ``system``. Each protocol lists only what its part uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .completion import Completions
from .detector import DetectorCache
from .lima2 import DeviceState
from .ports import ControlPort, DevicePort, ProcessingFinder, ReceiverPort
from .progress import Progress
from .run import Run
from .state import RunState, SystemState
from .topology import Topology

DatabaseCheck = Callable[[], Awaitable[None]]
"""Raises ``DeviceOffline`` naming ``TANGO_HOST`` when the Tango database does not answer."""


class StateTracker(Protocol):
    """What the preparation uses of the observer."""

    def assume(self, devices: Any, state: DeviceState) -> None: ...

    async def poll_states(self, grace: float | None = None) -> dict[str, DeviceState]: ...


class SystemParts(Protocol):
    """The devices, deadlines and current run shared by every part."""

    control: ControlPort
    receivers: list[ReceiverPort]
    devices: list[DevicePort]
    timeout_s: float
    poll_timeout_s: float
    clock: Callable[[], float]
    run_state: RunState
    run: Run | None
    completions: Completions


class ObservedSystem(SystemParts, Protocol):
    """What the observer reads and asks of the system (it changes no state itself but
    through ``transition``, ``record_error`` and ``adopt``)."""

    detector: DetectorCache

    @property
    def running(self) -> bool: ...

    @property
    def busy(self) -> bool: ...

    async def adopt(self, uid: str) -> None: ...

    def note(self, message: str) -> None: ...

    def offline_devices(self) -> list[str]: ...

    def record_error(self, message: str) -> None: ...

    def transition(self, trigger: str) -> None: ...

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]: ...


class PreparingSystem(SystemParts, Protocol):
    """What the preparation of a run (and of an adopted run) uses."""

    topology: Topology
    find_processing: ProcessingFinder
    check_database: DatabaseCheck | None
    timings: dict[str, Any]

    @property
    def observer(self) -> StateTracker: ...

    @property
    def device_states(self) -> dict[str, DeviceState]: ...

    async def rollback(self, devices: Sequence[DevicePort]) -> None: ...


class ViewedSystem(Protocol):
    """What a snapshot of the conductor reads."""

    receivers: list[ReceiverPort]
    topology: Topology
    detector: DetectorCache
    errors: list[str]
    run_state: RunState
    run: Run | None

    @property
    def device_states(self) -> dict[str, DeviceState]: ...

    @property
    def system_state(self) -> SystemState: ...

    @property
    def running(self) -> bool: ...

    @property
    def failed(self) -> bool: ...

    @property
    def uuid(self) -> str: ...

    @property
    def progress(self) -> Progress: ...
