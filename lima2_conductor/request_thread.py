"""Tango's standard device methods served in the request thread of an asyncio server.

PyTango runs an asyncio device's ``always_executed_hook``, ``read_attr_hardware``,
``dev_state`` and ``dev_status`` in the device server's event loop. Every attribute read
then pays two thread hops into the loop and back, and every command one, even when the
attribute or the command itself is served in the request thread (``read_green_mode=False``,
``cmd_green_mode=False``). A hop costs a fraction of a millisecond when the loop is idle,
and it waits for whatever the loop is doing when it is not (figures: docs/benchmarks.rst).

A C++ Lima2 device answers from its request thread. The devices of this project that have
nothing to do in these hooks keep them out of the loop with :class:`RequestThreadHooks`;
a method marked :func:`in_request_thread` must only read state that the loop replaces as
a whole (a snapshot, an immutable value), never state that it changes in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_LEFT_AS_IS = "__access_wrapped__"
"""The mark by which PyTango (10.x) recognises a standard method it has already wrapped
into its executor, and leaves it alone."""


def in_request_thread(method: F) -> F:
    """Mark an override of a standard device method to run in the Tango request thread."""
    setattr(method, _LEFT_AS_IS, True)
    return method


class RequestThreadHooks:
    """No-op ``always_executed_hook`` and ``read_attr_hardware`` that stay in the request
    thread (put it before ``Device`` among the bases)."""

    @in_request_thread
    def always_executed_hook(self) -> None:
        """Nothing to do before a request."""

    @in_request_thread
    def read_attr_hardware(self, attr_list: list[int]) -> None:
        """Every attribute reads its own value."""
