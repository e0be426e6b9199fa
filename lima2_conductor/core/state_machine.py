"""The conductor's run state machine, as one table.

``TABLE[(run_state, trigger)]`` is the next run state. A trigger is a command (what a
client asks: ``Prepare``, ``Start``, ``WriteSetting``...) or an observation (what the
conductor saw or concluded: ``acquisition_ended``, ``finished``, ``failed``...). A command
allowed without a change of state is in ``NO_OPS`` (a harmless no-op); one in neither is
rejected (``OPERATION_NOT_ALLOWED``). The core moves its run state only through
:func:`next_state`, so a transition the table lacks is a bug that shows at once; the
device gates its commands and settings with :func:`check`.
"""

from __future__ import annotations

from typing import Final

from .errors import OperationNotAllowed
from .state import RunState as R

COMMANDS: Final = ("Prepare", "Start", "Trigger", "Stop", "Close", "Reset", "WriteSetting")
"""The Tango commands, and ``WriteSetting``: the write of a memorized setting (acq_*, saving_*)."""
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

_FINISHED = (R.IDLE, R.PREPARED, R.DONE, R.STOPPED)
_ACTIVE = (R.STARTING, R.RUNNING, R.WAITING_FOR_PROC)

TABLE: dict[tuple[R, str], R] = {}
NO_OPS: set[tuple[R, str]] = set()  # commands allowed in a state that they leave as it is
# -- commands
for _s in _FINISHED:
    TABLE[(_s, "Prepare")] = R.PREPARING
    TABLE[(_s, "Close")] = R.CLOSING
    TABLE[(_s, "Reset")] = R.RESETTING
    NO_OPS.add((_s, "Stop"))
TABLE[(R.PREPARED, "Start")] = R.STARTING
TABLE[(R.RUNNING, "Trigger")] = R.RUNNING
for _s in _ACTIVE:
    TABLE[(_s, "Stop")] = R.STOPPING
TABLE[(R.PREPARING, "Stop")] = R.IDLE  # cancels the prepare, resets what it prepared
TABLE[(R.PREPARING, "Reset")] = R.RESETTING
TABLE[(R.FAULT, "Reset")] = R.RESETTING
NO_OPS.add((R.STOPPING, "Stop"))
NO_OPS.add((R.FAULT, "Stop"))  # stops whatever device still runs; the run stays FAULT
NO_OPS.add((R.FAULT, "Close"))
NO_OPS.add((R.RESETTING, "Stop"))
NO_OPS.add((R.CLOSING, "Stop"))
# a setting is the default of the next Prepare: it cannot change while one is being made
# (or the run it made is being started)
NO_OPS.update((_s, "WriteSetting") for _s in R if _s not in (R.PREPARING, R.STARTING))
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
    "WriteSetting": "a setting cannot change while a Prepare or a Start is under way",
}


def check(state: R, command: str) -> R | None:
    """Next state for ``command`` in ``state`` (``None``: allowed, and the state stays as
    it is); ``OperationNotAllowed`` if rejected."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    if (state, command) in NO_OPS:
        return None
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
    if nxt is None:
        raise ValueError(f"no transition from {state.value} on {trigger}")
    return nxt


def allowed(state: R, command: str) -> bool:
    """``command`` is accepted in ``state`` (a transition or a no-op): a Tango ``is_allowed``."""
    return (state, command) in TABLE or (state, command) in NO_OPS
