"""A Tango access-control refusal is reported as such, by name, never as a missing frame."""

from __future__ import annotations

import tango

from lima2_conductor.backend.errors import translate


def _refusal() -> tango.DevFailed:
    try:
        tango.Except.throw_exception(
            "API_ReadOnlyMode",
            "It's not possible to execute command getFrame with your current access right",
            "Connection::command_inout",
        )
    except tango.DevFailed as exc:
        return exc
    raise AssertionError("not raised")


def test_read_only_mode_is_access_denied_naming_the_device() -> None:
    err = translate(_refusal(), "id00/limaprocessing/x@0", "getFrame")
    assert err.reason == "ACCESS_DENIED"
    assert "access denied" in str(err) and "id00/limaprocessing/x@0" in str(err) and "getFrame" in str(err)
