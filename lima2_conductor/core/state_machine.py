"""The conductor's command state machine, as a table.

``TABLE[(run_state, command)]`` is the run state the command moves to, ``NOOP`` for a
harmless no-op, or absent for a rejection (``OPERATION_NOT_ALLOWED``). The device's
``is_allowed`` hooks and :class:`~lima2_conductor.core.system.AcquisitionSystem` both
use :func:`check`.
"""

from __future__ import annotations

from typing import Final

from .errors import OperationNotAllowed
from .state import RunState as R

COMMANDS: Final = ("Prepare", "Start", "Trigger", "Stop", "Close", "Reset")
NOOP: Final = "NOOP"

_FINISHED = (R.IDLE, R.PREPARED, R.DONE, R.STOPPED)
_ACTIVE = (R.STARTING, R.RUNNING, R.WAITING_FOR_PROC)

TABLE: dict[tuple[R, str], R | str] = {}
for s in _FINISHED:
    TABLE[(s, "Prepare")] = R.PREPARING
    TABLE[(s, "Close")] = R.IDLE
    TABLE[(s, "Reset")] = R.RESETTING
    TABLE[(s, "Stop")] = NOOP
TABLE[(R.PREPARED, "Start")] = R.STARTING
TABLE[(R.RUNNING, "Trigger")] = R.RUNNING
for s in _ACTIVE:
    TABLE[(s, "Stop")] = R.STOPPING
TABLE[(R.PREPARING, "Stop")] = R.IDLE  # cancels the prepare, resets what it prepared
TABLE[(R.PREPARING, "Reset")] = R.RESETTING
TABLE[(R.STOPPING, "Stop")] = NOOP
TABLE[(R.FAULT, "Stop")] = R.STOPPING  # stop whatever still runs after a fault
TABLE[(R.FAULT, "Reset")] = R.RESETTING
TABLE[(R.FAULT, "Close")] = NOOP
TABLE[(R.RESETTING, "Stop")] = NOOP

_HINTS = {
    "Prepare": "Prepare needs no acquisition running (Stop it) and no fault (Reset first)",
    "Start": "Start needs a prepared acquisition (call Prepare)",
    "Trigger": "Trigger needs a running acquisition",
    "Close": "Close needs a finished acquisition",
    "Reset": "Reset is not allowed while an acquisition runs (Stop it first)",
}


def check(state: R, command: str) -> R | str:
    """Next state for ``command`` in ``state``; ``OperationNotAllowed`` if rejected."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    try:
        return TABLE[(state, command)]
    except KeyError:
        hint = _HINTS.get(command, "")
        raise OperationNotAllowed(
            f"{command} is not allowed while {state.value}" + (f": {hint}" if hint else "")
        ) from None


def allowed(state: R, command: str) -> bool:
    return (state, command) in TABLE
