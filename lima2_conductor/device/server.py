"""``Lima2Conductor INSTANCE [tango options]``: the conductor device server."""

from __future__ import annotations

import faulthandler
import logging
import os
import sys

from tango import GreenMode
from tango.server import run

from ..backend.tango_devices import UNSUBSCRIBER
from ..frame_memory import keep_freed_frames
from .conductor import Lima2Conductor
from .logs import FORMAT, level_from_args

SERVER_NAME = "Lima2Conductor"
GIL_SWITCH_S = 0.0005
"""Requests served in Tango threads (Trigger, GetFrame, reads) wait at most this long for
the interpreter while the event loop runs Python (CPython's default is 5 ms)."""
EXIT_DRAIN_S = 3.0
"""How long the server waits at exit for its event subscriptions to end."""


def main(argv: list[str] | None = None) -> None:
    faulthandler.enable()  # a crash in a C library prints the Python stack to the log
    sys.setswitchinterval(GIL_SWITCH_S)
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=level_from_args(args), format=FORMAT)
    if not keep_freed_frames():  # frames relayed by GetFrame reuse the memory of the previous ones
        logging.getLogger(__name__).info("not glibc: freed frame memory is managed by the C library's defaults")
    run((Lima2Conductor,), args=[SERVER_NAME, *args], green_mode=GreenMode.Asyncio)
    if not UNSUBSCRIBER.drain(EXIT_DRAIN_S):  # the devices' delete_device ended their subscriptions
        logging.getLogger(__name__).warning("event subscriptions still ending at exit: leaving without waiting")
        logging.shutdown()
        os._exit(0)  # a thread inside Tango would abort a normal exit


if __name__ == "__main__":
    main()
