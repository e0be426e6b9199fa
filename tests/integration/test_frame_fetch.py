"""Frame getters over the conductor's GIOP client, against the simulated processing
devices (real Tango servers): pytango's bytes and pytango's errors, and pytango itself
when the wire cannot serve."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import tango

from lima2_conductor.backend import giop
from lima2_conductor.backend.frame_fetch import MAX_WIRE_FAILURES, FrameFetcher
from tests.integration.conftest import run_to_end

NB = 8


@pytest.fixture
def finished(conductor: tango.DeviceProxy) -> tango.DeviceProxy:
    """A run of ``NB`` frames, over."""
    conductor.acq_nb_frames = NB
    conductor.Prepare("")
    run_to_end(conductor)
    return conductor


def where(c: tango.DeviceProxy, idx: int) -> tuple[str, str]:
    w = json.loads(c.Lookup(idx))
    return w["processing_device"], w["command"]


def pytango(device: str, command: str, idx: int) -> tuple[str, bytes]:
    proxy = tango.DeviceProxy(device)
    proxy.__dict__["defaultCommandExtractAs"] = tango.ExtractAs.Bytes
    fmt, data = proxy.command_inout(command, idx)
    return fmt, bytes(data)


def test_frames_over_the_wire_are_the_bytes_pytango_gets(finished: tango.DeviceProxy) -> None:
    fetcher = FrameFetcher(3000)
    try:
        for idx in range(NB):
            fmt, data = fetcher.fetch(finished.acq_uuid, *where(finished, idx), idx)
            assert (fmt, bytes(data)) == pytango(*where(finished, idx), idx)
        expected = [pytango(*where(finished, idx), idx) for idx in range(NB)]
        with ThreadPoolExecutor(4) as pool:  # Tango request threads ask at the same time
            got = list(
                pool.map(lambda i: fetcher.fetch(finished.acq_uuid, *where(finished, i % NB), i % NB), range(32))
            )
        assert [(fmt, bytes(data)) for fmt, data in got] == expected * 4
        assert fetcher.stats() == {"wire": NB + 32, "pytango": 0}
    finally:
        fetcher.close()


def test_a_device_error_over_the_wire_is_the_devfailed_pytango_raises(finished: tango.DeviceProxy) -> None:
    device, command = where(finished, 0)
    missing = NB * 1000
    with pytest.raises(tango.DevFailed) as expected:
        pytango(device, command, missing)
    fetcher = FrameFetcher(3000)
    try:
        with pytest.raises(tango.DevFailed) as got:
            fetcher.fetch(finished.acq_uuid, device, command, missing)
        device_part = [(e.reason, e.desc, e.origin, e.severity) for e in expected.value.args[:-1]]
        assert [(e.reason, e.desc, e.origin, e.severity) for e in got.value.args[:-1]] == device_part
        assert (got.value.args[-1].reason, got.value.args[-1].desc) == (
            expected.value.args[-1].reason,
            expected.value.args[-1].desc,
        )  # the client's own entry, origin aside
        assert fetcher.fetch(finished.acq_uuid, device, command, 0)[1] == pytango(device, command, 0)[1]
        assert fetcher.stats() == {"wire": 1, "pytango": 0}
    finally:
        fetcher.close()


class Unreachable(FrameFetcher):
    """Routes every device to a local port nothing listens on (as if its server had
    restarted elsewhere): the wire fails with a real connection refusal."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(timeout_ms)
        self.resolved = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def _resolve(self, run_uuid: str, device: str, command: str) -> Any:
        route = super()._resolve(run_uuid, device, command)
        self.resolved += 1
        return giop.Route(giop.IiopProfile("127.0.0.1", self.port, route.profile.object_key), route.arg_type)


def test_when_the_wire_fails_the_frame_comes_through_pytango(finished: tango.DeviceProxy) -> None:
    device, command = where(finished, 0)
    fetcher = Unreachable(3000)
    try:
        for _ in range(MAX_WIRE_FAILURES + 2):
            assert fetcher.fetch(finished.acq_uuid, device, command, 0)[1] == pytango(device, command, 0)[1]
        assert fetcher.stats() == {"wire": 0, "pytango": MAX_WIRE_FAILURES + 2}
        assert fetcher.resolved == MAX_WIRE_FAILURES  # asked again once, then left to pytango
    finally:
        fetcher.close()


def test_the_conductor_relays_frames_over_the_wire(finished: tango.DeviceProxy) -> None:
    before = json.loads(finished.GetInfo())["frame_calls"]
    for idx in (0, 1, NB - 1):
        fmt, data = finished.GetFrame([[idx], ["frame"]])
        assert (fmt, bytes(data)) == pytango(*where(finished, idx), idx)
    after = json.loads(finished.GetInfo())["frame_calls"]
    assert after["wire"] - before["wire"] >= 3  # the monitor may refresh last_image meanwhile
    assert after["pytango"] == before["pytango"]


def test_the_newest_frame_is_relayed_over_the_wire(finished: tango.DeviceProxy) -> None:
    """``-1``: every device's ``last_frames`` read at once, then the device with the
    newest frame asked for its newest, without the event loop."""
    before = json.loads(finished.GetInfo())["frame_calls"]
    fmt, data = finished.GetFrame([[-1], ["frame"]])
    device, command = where(finished, -1)
    assert (fmt, bytes(data)) == pytango(device, command, -1) == pytango(device, command, NB - 1)
    after = json.loads(finished.GetInfo())["frame_calls"]
    assert after["wire"] - before["wire"] >= 1  # the monitor may refresh last_image meanwhile
    assert after["pytango"] == before["pytango"]
