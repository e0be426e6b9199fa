"""Map core errors to ``DevFailed`` with a stable reason, naming the device."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import tango

from ..core.errors import ConductorError

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
logger = logging.getLogger(__name__)


def raise_devfailed(exc: BaseException, origin: str) -> None:
    if isinstance(exc, ConductorError):
        tango.Except.throw_exception(exc.reason, str(exc), origin)
    logger.exception("internal error in %s", origin)
    tango.Except.throw_exception("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}", origin)


def tango_errors(fn: F) -> F:
    """Decorator for async command/attribute methods: errors become stable reasons."""

    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(self, *args, **kwargs)
        except tango.DevFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a reason
            raise_devfailed(exc, f"{self.get_name()}.{fn.__name__}")

    return wrapper  # type: ignore[return-value]
