"""Python logging for the conductor server: the console (level from Tango's ``-vN``) and
the Tango logging service (Jive's log viewer, LogViewer), through the device's streams."""

from __future__ import annotations

import logging
import re
import weakref
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
VERBOSITY = {0: logging.INFO, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG, 5: logging.DEBUG}


def level_from_args(args: list[str]) -> int:
    """The Python level of Tango's ``-vN`` option (``-v`` alone is 4); INFO without it."""
    for arg in args:
        match = re.fullmatch(r"-v(\d?)", arg)
        if match:
            return VERBOSITY.get(int(match.group(1) or 4), logging.DEBUG)
    return logging.INFO


class TangoLogHandler(logging.Handler):
    """Forwards records of ``lima2_conductor`` to a device's Tango log streams."""

    def __init__(self, device: Any) -> None:
        super().__init__()
        self._device = weakref.ref(device)
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        device = self._device()
        if device is None:
            return
        try:
            message = self.format(record)
            if record.levelno >= logging.ERROR:
                device.error_stream(message)
            elif record.levelno >= logging.WARNING:
                device.warn_stream(message)
            elif record.levelno >= logging.INFO:
                device.info_stream(message)
            else:
                device.debug_stream(message)
        except Exception:  # noqa: BLE001 - logging never breaks the server
            self.handleError(record)


def attach(device: Any) -> TangoLogHandler:
    """Route the package's log records to ``device``'s Tango logging too."""
    handler = TangoLogHandler(device)
    logging.getLogger("lima2_conductor").addHandler(handler)
    return handler


def detach(handler: TangoLogHandler) -> None:
    logging.getLogger("lima2_conductor").removeHandler(handler)
