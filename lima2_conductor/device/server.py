"""``Lima2Conductor INSTANCE [tango options]``: the conductor device server."""

from __future__ import annotations

import faulthandler
import logging
import sys

from tango import GreenMode
from tango.server import run

from .conductor import Lima2Conductor

SERVER_NAME = "Lima2Conductor"


def main(argv: list[str] | None = None) -> None:
    faulthandler.enable()  # a crash in a C library prints the Python stack to the log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run((Lima2Conductor,), args=[SERVER_NAME, *(sys.argv[1:] if argv is None else argv)], green_mode=GreenMode.Asyncio)


if __name__ == "__main__":
    main()
