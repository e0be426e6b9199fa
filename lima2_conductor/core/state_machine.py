"""The conductor's run state machine, as one table.

``TABLE[(run_state, trigger)]`` is the next run state. A trigger is a command (what a
client asks: ``Prepare``, ``Start``...) or an observation (what the conductor saw or
concluded: ``acquisition_ended``, ``finished``, ``failed``...). A command missing from the
table is rejected (``OPERATION_NOT_ALLOWED``); ``NOOP`` is a harmless no-op. The core
moves its run state only through :func:`next_state`, so a transition the table lacks is a
bug that shows at once; the device gates its commands with :func:`check`.
"""

from __future__ import annotations

from typing import Final

from .errors import OperationNotAllowed
from .state import RunState as R

COMMANDS: Final = ("Prepare", "Start", "Trigger", "Stop", "Close", "Reset")
OBSERVATIONS: Final = (
    "prepared",  # every device prepared
    "prepare_failed",  # a Prepare failed or was cancelled (devices rolled back)
    "started",  # every device started
    "acquisition_ended",  # every device ended its acquisition, processing still running
    "finished",  # acquisition and processing ended, end-of-run work done
    "failed",  # a device failed, or end-of-run work failed
    "watchdog",  # no progress for too long after the acquisition ended
    "closed",  # Close done
    "reset_done",  # Reset done (also when a device refused it)
    "adopted",  # a run found running on the devices was taken over
    "adopted_stopped",  # a run found stopped on the devices was taken over, to be finished
)
NOOP: Final = "NOOP"

_FINISHED = (R.IDLE, R.PREPARED, R.DONE, R.STOPPED)
_ACTIVE = (R.STARTING, R.RUNNING, R.WAITING_FOR_PROC)

TABLE: dict[tuple[R, str], R | str] = {}
# -- commands
for _s in _FINISHED:
    TABLE[(_s, "Prepare")] = R.PREPARING
    TABLE[(_s, "Close")] = R.CLOSING
    TABLE[(_s, "Reset")] = R.RESETTING
    TABLE[(_s, "Stop")] = NOOP
TABLE[(R.PREPARED, "Start")] = R.STARTING
TABLE[(R.RUNNING, "Trigger")] = R.RUNNING
for _s in _ACTIVE:
    TABLE[(_s, "Stop")] = R.STOPPING
TABLE[(R.PREPARING, "Stop")] = R.IDLE  # cancels the prepare, resets what it prepared
TABLE[(R.PREPARING, "Reset")] = R.RESETTING
TABLE[(R.STOPPING, "Stop")] = NOOP
TABLE[(R.FAULT, "Stop")] = NOOP  # stops whatever device still runs; the run stays FAULT
TABLE[(R.FAULT, "Reset")] = R.RESETTING
TABLE[(R.FAULT, "Close")] = NOOP
TABLE[(R.RESETTING, "Stop")] = NOOP
TABLE[(R.CLOSING, "Stop")] = NOOP
# -- observations
TABLE[(R.PREPARING, "prepared")] = R.PREPARED
TABLE[(R.PREPARING, "prepare_failed")] = R.IDLE
TABLE[(R.STARTING, "started")] = R.RUNNING
TABLE[(R.RUNNING, "acquisition_ended")] = R.WAITING_FOR_PROC
TABLE[(R.RUNNING, "finished")] = R.DONE
TABLE[(R.WAITING_FOR_PROC, "finished")] = R.DONE
TABLE[(R.STOPPING, "finished")] = R.STOPPED
for _s in (*_ACTIVE, R.STOPPING):
    TABLE[(_s, "failed")] = R.FAULT
TABLE[(R.WAITING_FOR_PROC, "watchdog")] = R.FAULT
TABLE[(R.STOPPING, "watchdog")] = R.FAULT
TABLE[(R.CLOSING, "closed")] = R.IDLE
TABLE[(R.RESETTING, "reset_done")] = R.IDLE
TABLE[(R.IDLE, "adopted")] = R.RUNNING
TABLE[(R.IDLE, "adopted_stopped")] = R.STOPPING

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


def next_state(state: R, trigger: str) -> R:
    """The state ``trigger`` leads to from ``state``; ``ValueError`` if the table lacks it
    (a bug: the core asked for a transition the design does not have)."""
    if trigger not in COMMANDS and trigger not in OBSERVATIONS:
        raise ValueError(f"unknown trigger {trigger!r}")
    nxt = TABLE.get((state, trigger))
    if nxt is None or nxt == NOOP:
        raise ValueError(f"no transition from {state.value} on {trigger}")
    assert isinstance(nxt, R)
    return nxt


def allowed(state: R, command: str) -> bool:
    return (state, command) in TABLE
