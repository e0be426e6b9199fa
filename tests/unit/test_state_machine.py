"""Every cell of the run state machine against an expected value written here."""

from __future__ import annotations

import pytest

from lima2_conductor.core import state_machine
from lima2_conductor.core.errors import OperationNotAllowed
from lima2_conductor.core.state import RunState

NOOP = "no-op"  # allowed, the state stays as it is (state_machine.NO_OPS)
R = RunState
SETTABLE = {"WriteSetting": NOOP}  # a setting may change but while a Prepare or a Start is under way
# For each state: trigger -> expected next state (NOOP for a harmless no-op); a command
# missing here must be rejected, an observation missing here must not exist.
EXPECTED: dict[RunState, dict[str, RunState | str]] = {
    R.IDLE: {
        **SETTABLE,
        "Prepare": R.PREPARING,
        "Close": R.CLOSING,
        "Reset": R.RESETTING,
        "Stop": NOOP,
        "adopted": R.RUNNING,
        "adopted_stopped": R.STOPPING,
    },
    R.PREPARING: {"Stop": R.IDLE, "Reset": R.RESETTING, "prepared": R.PREPARED, "prepare_failed": R.IDLE},
    R.PREPARED: {
        **SETTABLE,
        "Prepare": R.PREPARING,
        "Start": R.STARTING,
        "Close": R.CLOSING,
        "Reset": R.RESETTING,
        "Stop": NOOP,
    },
    R.STARTING: {"Stop": R.STOPPING, "started": R.RUNNING, "failed": R.FAULT},
    R.RUNNING: {
        **SETTABLE,
        "Trigger": R.RUNNING,
        "Stop": R.STOPPING,
        "acquisition_ended": R.WAITING_FOR_PROC,
        "finished": R.DONE,
        "failed": R.FAULT,
    },
    R.WAITING_FOR_PROC: {**SETTABLE, "Stop": R.STOPPING, "finished": R.DONE, "failed": R.FAULT, "watchdog": R.FAULT},
    R.STOPPING: {**SETTABLE, "Stop": NOOP, "finished": R.STOPPED, "failed": R.FAULT, "watchdog": R.FAULT},
    R.CLOSING: {**SETTABLE, "Stop": NOOP, "closed": R.IDLE},
    R.DONE: {**SETTABLE, "Prepare": R.PREPARING, "Close": R.CLOSING, "Reset": R.RESETTING, "Stop": NOOP},
    R.STOPPED: {**SETTABLE, "Prepare": R.PREPARING, "Close": R.CLOSING, "Reset": R.RESETTING, "Stop": NOOP},
    R.FAULT: {**SETTABLE, "Stop": NOOP, "Reset": R.RESETTING, "Close": NOOP},
    R.RESETTING: {**SETTABLE, "Stop": NOOP, "reset_done": R.IDLE},
}


def test_every_state_is_listed() -> None:
    assert set(EXPECTED) == set(RunState)


@pytest.mark.parametrize("state", list(RunState))
@pytest.mark.parametrize("command", state_machine.COMMANDS)
def test_every_command_cell(state: RunState, command: str) -> None:
    expected = EXPECTED[state].get(command)
    if expected is None:
        with pytest.raises(OperationNotAllowed, match=command):
            state_machine.check(state, command)
        assert not state_machine.allowed(state, command)
    else:
        assert state_machine.check(state, command) == (None if expected == NOOP else expected)
        assert state_machine.allowed(state, command)


@pytest.mark.parametrize("state", list(RunState))
@pytest.mark.parametrize("observation", state_machine.OBSERVATIONS)
def test_every_observation_cell(state: RunState, observation: str) -> None:
    expected = EXPECTED[state].get(observation)
    if expected is None:
        with pytest.raises(ValueError, match="no transition"):
            state_machine.next_state(state, observation)
    else:
        assert state_machine.next_state(state, observation) == expected


def test_the_table_has_nothing_else() -> None:
    listed = {(s, t) for s, cells in EXPECTED.items() for t, nxt in cells.items() if nxt != NOOP}
    no_ops = {(s, t) for s, cells in EXPECTED.items() for t, nxt in cells.items() if nxt == NOOP}
    assert set(state_machine.TABLE) == listed
    assert state_machine.NO_OPS == no_ops


def test_unknown_triggers_are_bugs() -> None:
    with pytest.raises(ValueError):
        state_machine.check(R.IDLE, "Launch")
    with pytest.raises(ValueError):
        state_machine.next_state(R.IDLE, "exploded")
    with pytest.raises(ValueError, match="no transition"):
        state_machine.next_state(R.IDLE, "Stop")  # a no-op is not a transition
