"""Error taxonomy: each error carries one stable reason that clients can test."""

from __future__ import annotations


class ConductorError(Exception):
    """Base error; ``reason`` is the stable ``DevFailed`` reason."""

    reason = "INTERNAL_ERROR"

    def __init__(self, message: str, device: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.device = device

    def __str__(self) -> str:
        return f"{self.device}: {self.message}" if self.device else self.message


class ParamError(ConductorError):
    reason = "PARAM_ERROR"


class OperationNotAllowed(ConductorError):
    reason = "OPERATION_NOT_ALLOWED"


class DeviceOffline(ConductorError):
    reason = "DEVICE_OFFLINE"


class DeviceTimeout(ConductorError):
    reason = "DEVICE_TIMEOUT"


class DeviceError(ConductorError):
    reason = "DEVICE_ERROR"


class NotFound(ConductorError):
    reason = "NOT_FOUND"


class AccessDenied(ConductorError):
    """Tango access control gives the conductor read-only access to a device: not a
    missing frame nor a device failure, and never reported as one."""

    reason = "ACCESS_DENIED"


class SavingError(ConductorError):
    reason = "SAVING_ERROR"


class MultiDeviceError(ConductorError):
    """Several devices failed one fan-out; the reason is the most telling one."""

    _PRIORITY = ("DEVICE_OFFLINE", "DEVICE_TIMEOUT", "PARAM_ERROR", "DEVICE_ERROR", "SAVING_ERROR")

    def __init__(self, action: str, errors: list[ConductorError]) -> None:
        self.errors = errors
        names = ", ".join(e.device or "?" for e in errors)
        details = "; ".join(str(e) for e in errors)
        super().__init__(f"{action} failed on {len(errors)} device(s) ({names}): {details}")
        reasons = {e.reason for e in errors}
        self.reason = next((r for r in self._PRIORITY if r in reasons), errors[0].reason)
