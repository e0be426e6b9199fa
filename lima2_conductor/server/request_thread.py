"""Tango's standard device methods served in the request thread of an asyncio server.

PyTango runs an asyncio device's ``always_executed_hook``, ``read_attr_hardware``,
``dev_state`` and ``dev_status`` in the device server's event loop. Every attribute read
then pays two thread hops into the loop and back, and every command one, even when the
attribute or the command itself is served in the request thread (``read_green_mode=False``,
``cmd_green_mode=False``). A hop is cheap when the loop is idle, and it waits for
whatever the loop is doing when it is not (figures: docs/benchmarks.rst).

A C++ Lima2 device answers from its request thread. The devices of this project that have
nothing to do in these hooks keep them out of the loop with :class:`RequestThreadHooks`;
a method marked :func:`in_request_thread` must only read state that the loop replaces as
a whole (a snapshot, an immutable value), never state that it changes in place.

**This uses a private mark of PyTango, as an optimisation only.** PyTango has no public
way to keep a standard method out of its executor: when it creates a device class
(``DeviceMeta``, ``tango/server.py``, ``__patch_standard_device_methods``, with a "TODO
allow to force non green mode" in 9.5 to 10.3) it wraps every standard method into the
executor, except a method that already carries ``__access_wrapped__``, the mark it puts
on the wrappers it has made itself. :func:`in_request_thread` puts that mark on the method.
So that the device never depends on it:

* whether the running PyTango leaves a marked method alone is detected once, on a
  throwaway device class (:func:`request_thread_hooks`), not assumed from its version;
* ``LIMA2_CONDUCTOR_REQUEST_THREAD_HOOKS=0`` (read when this module is imported, i.e. at
  the server's start) switches it off;
* where it is off or not honoured, a marked method is handed to PyTango as a coroutine
  function running the same body, which PyTango runs in the event loop like any asyncio
  device's (its public, documented path): correct, one or two hops slower per request.

PyTango 9.5.1, 10.0.0, 10.0.4, 10.1.2 and 10.3.1 were read and honour the mark; a test
(``tests/unit/test_request_thread.py``) says which path each version takes, and runs the
device tests with the switch off. ``docs/upstream/pytango-request-thread-hooks.rst`` asks
PyTango for a public way.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

SWITCH = "LIMA2_CONDUCTOR_REQUEST_THREAD_HOOKS"
"""Environment variable: ``0`` (or ``false``, ``no``, ``off``) serves the marked methods in
the event loop whatever PyTango does with the mark."""

_LEFT_AS_IS = "__access_wrapped__"
"""PyTango's private mark of a standard method it has already wrapped into its executor,
and leaves alone (PyTango 9.5 to 10.3; not part of its API)."""

STANDARD_METHODS = ("always_executed_hook", "read_attr_hardware", "dev_state", "dev_status")


def switched_on(environ: Any = os.environ) -> bool:
    """False when the environment switches the request-thread path off."""
    return environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _marked_noop() -> Callable[..., None]:
    def noop(self: Any, *args: Any) -> None:
        """A standard method of the probe."""

    setattr(noop, _LEFT_AS_IS, True)
    return noop


@functools.cache
def mark_honoured() -> bool:
    """Whether the running PyTango leaves a standard method carrying the mark as it is
    (tried on a throwaway device class, the way PyTango treats every device class)."""
    from tango.server import Device

    marked = {name: _marked_noop() for name in STANDARD_METHODS}
    try:
        probe = type("_RequestThreadProbe", (Device,), dict(marked))
    except Exception:  # noqa: BLE001 - any failure means: do not rely on the mark
        return False
    return all(probe.__dict__.get(name) is method for name, method in marked.items())


@functools.cache
def request_thread_hooks() -> bool:
    """True when the methods marked :func:`in_request_thread` run in the Tango request
    thread, False when they run in the event loop (switched off, or a PyTango that does not
    honour the mark). Decided once, when the device classes are made."""
    return switched_on() and mark_honoured()


def request_thread_path() -> str:
    """Which path is in effect on the running PyTango, and why (for the logs)."""
    import tango

    if request_thread_hooks():
        return f"standard methods in the request thread (PyTango {tango.__version__} leaves marked methods alone)"
    if not mark_honoured():
        return f"standard methods in the event loop (PyTango {tango.__version__} does not leave marked methods alone)"
    return f"standard methods in the event loop ({SWITCH}=0)"


def in_request_thread(method: F) -> F:
    """Serve an override of a standard device method in the Tango request thread where
    the running PyTango allows it (:func:`request_thread_hooks`), in the event loop
    otherwise."""
    if request_thread_hooks():
        setattr(method, _LEFT_AS_IS, True)
        return method

    async def in_event_loop(*args: Any, **kwargs: Any) -> Any:
        return method(*args, **kwargs)

    # the name and doc, but no ``__wrapped__``: PyTango follows it to decide whether a
    # standard method is a coroutine function (and warns if not)
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(in_event_loop, name, getattr(method, name))
    return in_event_loop  # type: ignore[return-value]


class RequestThreadHooks:
    """No-op ``always_executed_hook`` and ``read_attr_hardware`` that stay in the request
    thread where PyTango allows it (put it before ``Device`` among the bases)."""

    @in_request_thread
    def always_executed_hook(self) -> None:
        """Nothing to do before a request."""

    @in_request_thread
    def read_attr_hardware(self, attr_list: list[int]) -> None:
        """Every attribute reads its own value."""
