"""One translator from Tango errors to the core's errors, naming the device."""

from __future__ import annotations

import tango

from ..core.errors import AccessDenied, ConductorError, DeviceError, DeviceOffline, DeviceTimeout
from ..core.lima2 import LIMA_ERROR_REASON, lima_what

_OFFLINE = {
    "API_DeviceNotExported",
    "API_CantConnectToDevice",
    "API_CorbaException",
    "API_ServerNotRunning",
    "API_DeviceNotDefined",
    "DB_DeviceNotDefined",
    "API_CantConnectToDatabase",
}
_TIMEOUT = {"API_DeviceTimedOut"}
_DENIED = {"API_ReadOnlyMode"}
"""Tango access control: this process's user may only read the device (or call the
commands its class lists in ``AllowedAccessCmd``)."""


def translate(exc: BaseException, device: str, action: str) -> ConductorError:
    """Map a Tango error from a call to ``device`` to a core error (anything that is not a
    Tango failure is a bug and is not translated: callers let it propagate)."""
    if isinstance(exc, ConductorError):
        exc.device = exc.device or device
        return exc
    if isinstance(exc, TimeoutError):
        return DeviceTimeout(f"{action} timed out", device)
    if isinstance(exc, tango.DevFailed):
        reasons = [e.reason for e in exc.args]
        if (
            any(r in _TIMEOUT for r in reasons)
            or isinstance(exc, tango.CommunicationFailed)
            and "timeout" in str(exc).lower()
        ):
            return DeviceTimeout(f"{action} timed out", device)
        if (
            isinstance(exc, tango.ConnectionFailed)
            or any(r in _OFFLINE for r in reasons)
            or "TRANSIENT" in " ".join(reasons)
        ):
            return DeviceOffline(f"{action}: device offline", device)
        denied = next((e for e in exc.args if e.reason in _DENIED), None)
        if denied is not None:
            return AccessDenied(f"{action}: access denied by Tango access control ({denied.desc.strip()})", device)
        lima = next((e for e in exc.args if e.reason == LIMA_ERROR_REASON), None)
        message = lima_what(lima.desc) if lima is not None else exc.args[0].desc.strip()
        return DeviceError(f"{action}: {message}", device)
    raise TypeError(f"not a Tango failure: {exc!r}")
