"""Map core errors to ``DevFailed`` with a stable reason, naming the device; log every
command with its arguments (summarised) and its outcome."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import tango

from ..core.errors import ConductorError

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)
SUMMARY_CHARS = 200
QUIET = ("GetFrame", "GetReducedData", "Lookup", "Trigger", "GetInfo")
"""Commands called often (per frame or per point): logged at debug level only."""


def raise_devfailed(exc: BaseException, origin: str) -> NoReturn:
    if isinstance(exc, ConductorError):
        tango.Except.throw_exception(exc.reason, str(exc), origin)
    logger.exception("internal error in %s", origin)
    tango.Except.throw_exception("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}", origin)
    raise AssertionError("tango.Except.throw_exception returned")  # it always raises


def _summary(args: tuple[Any, ...]) -> str:
    text = ", ".join(repr(a) for a in args)
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS] + f"... ({len(text)} chars)"


def tango_errors(fn: F) -> F:
    """Decorator for commands (async, or plain ones run in the request thread): errors
    become stable reasons; each call is logged."""
    name = fn.__name__
    log = logger.debug if name in QUIET else logger.info

    def failed(self: Any, args: tuple[Any, ...], exc: Exception) -> NoReturn:
        if isinstance(exc, tango.DevFailed):
            logger.warning("%s(%s) failed: %s", name, _summary(args), exc.args[0].desc)
            raise exc
        reason = exc.reason if isinstance(exc, ConductorError) else "INTERNAL_ERROR"
        logger.warning("%s(%s) refused: %s %s", name, _summary(args), reason, exc)
        raise_devfailed(exc, f"{self.get_name()}.{name}")

    if not inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        def plain(self: Any, *args: Any) -> Any:
            t0 = time.monotonic()
            try:
                result = fn(self, *args)
            except Exception as exc:  # noqa: BLE001 - mapped to a reason
                failed(self, args, exc)
            log("%s(%s) done in %.1f ms", name, _summary(args), 1000 * (time.monotonic() - t0))
            return result

        return plain  # type: ignore[return-value]

    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any) -> Any:
        t0 = time.monotonic()
        try:
            result = await fn(self, *args)
        except Exception as exc:  # noqa: BLE001 - mapped to a reason
            failed(self, args, exc)
        log("%s(%s) done in %.1f ms", name, _summary(args), 1000 * (time.monotonic() - t0))
        return result

    return wrapper  # type: ignore[return-value]
