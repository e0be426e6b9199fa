"""Map core errors to ``DevFailed`` with a stable reason, naming the device; log every
command with its arguments (summarised) and its outcome."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import tango

from ..core.errors import ConductorError

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
logger = logging.getLogger(__name__)
SUMMARY_CHARS = 200


def raise_devfailed(exc: BaseException, origin: str) -> None:
    if isinstance(exc, ConductorError):
        tango.Except.throw_exception(exc.reason, str(exc), origin)
    logger.exception("internal error in %s", origin)
    tango.Except.throw_exception("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}", origin)


def _summary(args: tuple[Any, ...]) -> str:
    text = ", ".join(repr(a) for a in args)
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS] + f"... ({len(text)} chars)"


def tango_errors(fn: F) -> F:
    """Decorator for async commands: errors become stable reasons; each call is logged."""

    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = fn.__name__
        t0 = time.monotonic()
        quiet = name in ("GetFrame", "GetReducedData", "Lookup", "Trigger", "GetInfo")
        log = logger.debug if quiet else logger.info
        try:
            result = await fn(self, *args, **kwargs)
        except tango.DevFailed as exc:
            logger.warning("%s(%s) failed: %s", name, _summary(args), exc.args[0].desc)
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a reason
            reason = exc.reason if isinstance(exc, ConductorError) else "INTERNAL_ERROR"
            logger.warning("%s(%s) refused: %s %s", name, _summary(args), reason, exc)
            raise_devfailed(exc, f"{self.get_name()}.{name}")
        log("%s(%s) done in %.1f ms", name, _summary(args), 1000 * (time.monotonic() - t0))
        return result

    return wrapper  # type: ignore[return-value]
