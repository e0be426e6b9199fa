"""``Lima2Conductor INSTANCE [tango options]``: the conductor device server.

Process-wide settings are left at their defaults. One is available on request, measured
in ``benchmarks/bench_server_tuning.py`` (docs/benchmarks.rst):
``LIMA2_CONDUCTOR_SWITCH_INTERVAL_S=<seconds>``, the interpreter's thread switch interval
(``sys.setswitchinterval``), which bounds how long a Tango request thread waits for the
interpreter while the event loop runs Python.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys

from tango import GreenMode
from tango.server import run

from ..backend.database import DATABASE
from ..backend.tango_devices import UNSUBSCRIBER
from .conductor import Lima2Conductor
from .logs import FORMAT, level_from_args

SERVER_NAME = "Lima2Conductor"
SWITCH_INTERVAL = "LIMA2_CONDUCTOR_SWITCH_INTERVAL_S"
EXIT_DRAIN_S = 3.0
"""How long the server waits at exit for its event subscriptions to end."""
EXIT_UNCLEAN = 3
"""Exit status when subscriptions were still ending, or a database call still running,
at exit (Starter and systemd see it)."""

logger = logging.getLogger(__name__)


def apply_tuning(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """Apply the process-wide settings asked for in the environment; what was applied."""
    applied = []
    interval = environ.get(SWITCH_INTERVAL, "").strip()
    if interval:
        try:
            sys.setswitchinterval(float(interval))
            applied.append(f"{SWITCH_INTERVAL}: {float(interval)} s")
        except ValueError as exc:
            logger.warning("%s=%r ignored: %s", SWITCH_INTERVAL, interval, exc)
    return applied


def main(argv: list[str] | None = None) -> None:
    faulthandler.enable()  # a crash in a C library prints the Python stack to the log
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=level_from_args(args), format=FORMAT)
    for line in apply_tuning():
        logger.info("process setting: %s", line)
    run((Lima2Conductor,), args=[SERVER_NAME, *args], green_mode=GreenMode.Asyncio)
    # the devices' delete_device ended their subscriptions; a database call may still run
    drained = UNSUBSCRIBER.drain(EXIT_DRAIN_S)
    idle = DATABASE.idle(EXIT_DRAIN_S if drained else 0.0)
    if not (drained and idle):
        # a thread still inside Tango would abort a normal interpreter exit: leave at once,
        # logs flushed, with a status that says the exit was not clean
        what = "event subscriptions still ending" if not drained else "a Tango database call still running"
        logger.error("%s %.0f s after shutdown: exiting without it", what, EXIT_DRAIN_S)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_UNCLEAN)


if __name__ == "__main__":
    main()
