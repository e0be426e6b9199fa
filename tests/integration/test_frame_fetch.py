"""Frames relayed from Tango request threads (``GetFrame``), against the simulated
processing devices (real Tango servers): the bytes and the errors a direct call gets."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import tango

from lima2_conductor.backend.frame_fetch import FrameFetcher
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


def direct(device: str, command: str, idx: int) -> tuple[str, bytes]:
    fmt, data = tango.DeviceProxy(device).command_inout(command, idx)
    return fmt, bytes(data)


def test_relayed_frames_are_the_bytes_a_direct_call_gets(finished: tango.DeviceProxy) -> None:
    fetcher = FrameFetcher(3000)
    for idx in range(NB):
        fmt, data = fetcher.fetch(finished.acq_uuid, *where(finished, idx), idx)
        assert (fmt, bytes(data)) == direct(*where(finished, idx), idx)
    expected = [direct(*where(finished, idx), idx) for idx in range(NB)]
    with ThreadPoolExecutor(4) as pool:  # Tango request threads ask at the same time
        got = list(pool.map(lambda i: fetcher.fetch(finished.acq_uuid, *where(finished, i % NB), i % NB), range(32)))
    assert [(fmt, bytes(data)) for fmt, data in got] == expected * 4
    assert fetcher.stats() == {"relayed": NB + 32, "failed": 0}


def test_a_device_error_is_the_devfailed_a_direct_call_raises(finished: tango.DeviceProxy) -> None:
    device, command = where(finished, 0)
    missing = NB * 1000
    with pytest.raises(tango.DevFailed) as expected:
        direct(device, command, missing)
    fetcher = FrameFetcher(3000)
    with pytest.raises(tango.DevFailed) as got:
        fetcher.fetch(finished.acq_uuid, device, command, missing)
    assert [(e.reason, e.desc) for e in got.value.args] == [(e.reason, e.desc) for e in expected.value.args]
    assert fetcher.fetch(finished.acq_uuid, device, command, 0)[1] == direct(device, command, 0)[1]
    assert fetcher.stats() == {"relayed": 1, "failed": 1}


def test_the_conductor_relays_frames_from_request_threads(finished: tango.DeviceProxy) -> None:
    before = json.loads(finished.GetInfo())["frame_calls"]
    for idx in (0, 1, NB - 1):
        fmt, data = finished.GetFrame([[idx], ["frame"]])
        assert (fmt, bytes(data)) == direct(*where(finished, idx), idx)
    after = json.loads(finished.GetInfo())["frame_calls"]
    assert after["relayed"] - before["relayed"] >= 3  # the monitor may refresh last_image meanwhile
    assert after["failed"] == before["failed"]


def test_the_newest_frame_is_relayed_from_request_threads(finished: tango.DeviceProxy) -> None:
    """``-1``: every device's ``last_frames`` read at once, then the device with the
    newest frame asked for its newest, without the event loop."""
    before = json.loads(finished.GetInfo())["frame_calls"]
    fmt, data = finished.GetFrame([[-1], ["frame"]])
    device, command = where(finished, -1)
    assert (fmt, bytes(data)) == direct(device, command, -1) == direct(device, command, NB - 1)
    after = json.loads(finished.GetInfo())["frame_calls"]
    assert after["relayed"] - before["relayed"] >= 1
