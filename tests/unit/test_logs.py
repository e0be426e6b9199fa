"""The conductor server's logging: ``-vN`` levels and forwarding to the Tango streams."""

from __future__ import annotations

import logging

from lima2_conductor.device.logs import attach, detach, level_from_args


def test_verbosity_levels() -> None:
    assert level_from_args(["simulator"]) == logging.INFO
    assert level_from_args(["simulator", "-v1"]) == logging.ERROR
    assert level_from_args(["simulator", "-v2"]) == logging.WARNING
    assert level_from_args(["simulator", "-v4"]) == logging.DEBUG
    assert level_from_args(["simulator", "-v"]) == logging.DEBUG


class Streams:
    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    def error_stream(self, m: str) -> None:
        self.got.append(("error", m))

    def warn_stream(self, m: str) -> None:
        self.got.append(("warn", m))

    def info_stream(self, m: str) -> None:
        self.got.append(("info", m))

    def debug_stream(self, m: str) -> None:
        self.got.append(("debug", m))


def test_records_reach_the_tango_streams() -> None:
    device = Streams()
    handler = attach(device)
    log = logging.getLogger("lima2_conductor.core.system")
    old = log.level
    log.setLevel(logging.DEBUG)
    try:
        log.info("run state IDLE -> PREPARING")
        log.error("rcv1 went FAULT")
        logging.getLogger("elsewhere").error("not ours")
    finally:
        detach(handler)
        log.setLevel(old)
    log.error("after detach")
    assert device.got == [
        ("info", "lima2_conductor.core.system: run state IDLE -> PREPARING"),
        ("error", "lima2_conductor.core.system: rcv1 went FAULT"),
    ]
