"""Device and system states, and the rules that derive one from the other."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum, StrEnum

from .lima2 import DeviceState

__all__ = ["RunState", "SystemState", "tango_state_name"]


class SystemState(IntEnum):
    """One state for the whole system, derived from the device states."""

    IDLE = 0
    PREPARED = 1
    RUNNING = 2
    FAULT = 3
    UNKNOWN = 4
    DISCONNECTED = 5

    @staticmethod
    def from_device_states(states: Sequence[DeviceState]) -> SystemState:
        """Derive the system state; the tolerance rules, first match wins:

        1. any device OFFLINE -> DISCONNECTED;
        2. any device FAULT or TERMINATE -> FAULT;
        3. all IDLE or STOPPED -> IDLE;
        4. all PREPARED -> PREPARED;
        5. a mix of IDLE and PREPARED -> IDLE (one device lost its preparation:
           prepare again);
        6. all RUNNING, or RUNNING mixed with IDLE or STOPPED -> RUNNING (devices
           finish one after the other);
        7. anything else -> UNKNOWN.
        """
        if not states:
            return SystemState.UNKNOWN
        present = set(states)
        if DeviceState.OFFLINE in present:
            return SystemState.DISCONNECTED
        if present & {DeviceState.FAULT, DeviceState.TERMINATE}:
            return SystemState.FAULT
        if present <= {DeviceState.IDLE, DeviceState.STOPPED}:
            return SystemState.IDLE
        if present == {DeviceState.PREPARED}:
            return SystemState.PREPARED
        if present <= {DeviceState.IDLE, DeviceState.PREPARED, DeviceState.STOPPED}:
            return SystemState.IDLE
        if DeviceState.RUNNING in present and present <= {
            DeviceState.RUNNING,
            DeviceState.IDLE,
            DeviceState.STOPPED,
        }:
            return SystemState.RUNNING
        return SystemState.UNKNOWN


class RunState(StrEnum):
    """The conductor's own view of its current run (it owns this one)."""

    IDLE = "IDLE"
    PREPARING = "PREPARING"
    PREPARED = "PREPARED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    WAITING_FOR_PROC = "WAITING_FOR_PROC"
    STOPPING = "STOPPING"
    CLOSING = "CLOSING"
    DONE = "DONE"
    STOPPED = "STOPPED"
    FAULT = "FAULT"
    RESETTING = "RESETTING"

    @property
    def active(self) -> bool:
        """True while an acquisition is under way."""
        return self in (RunState.STARTING, RunState.RUNNING, RunState.WAITING_FOR_PROC, RunState.STOPPING)


def tango_state_name(system: SystemState, run: RunState, initialising: bool = False) -> str:
    """Name of the Tango ``DevState`` the conductor shows (the mapping of docs/interface.rst, ``State``)."""
    if initialising:
        return "INIT"
    if system == SystemState.DISCONNECTED:
        return "DISABLE"
    if system == SystemState.FAULT or run == RunState.FAULT:
        return "FAULT"
    if run.active or run == RunState.STOPPING or system == SystemState.RUNNING:
        return "RUNNING"
    if system == SystemState.PREPARED:
        return "STANDBY"
    if system == SystemState.IDLE:
        return "ON"
    return "UNKNOWN"
