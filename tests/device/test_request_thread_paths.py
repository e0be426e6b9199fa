"""Where the standard methods of an asyncio device run on each path, in a real server:
the request thread where PyTango leaves marked methods alone and the switch is on, the
event loop otherwise (see :mod:`lima2_conductor.server.request_thread`)."""

from __future__ import annotations

import json

import pytest
import tango
from tango.test_context import DeviceTestContext

from lima2_conductor.server.request_thread import mark_honoured
from tests.device.thread_probe import PATHS, ThreadProbe, expected_mark_honoured, spawned_servers

METHODS = ["always_executed_hook", "dev_state", "dev_status", "read_attr_hardware"]


@pytest.mark.parametrize("path", list(PATHS))
def test_standard_methods_run_where_the_path_says(path: str) -> None:
    honoured = expected_mark_honoured(tango.__version__)
    if honoured is None:  # a PyTango not in the table: its behaviour must match the detection
        honoured = mark_honoured()
    in_request_thread = path == "request-thread" and honoured
    with spawned_servers(path), DeviceTestContext(ThreadProbe, process=True, timeout=60) as proxy:
        proxy.Seen()
        assert proxy.value == 42
        assert proxy.State() == tango.DevState.ON
        assert proxy.Status() == "probing"
        report = json.loads(proxy.Seen())
    expected = "request" if in_request_thread else "loop"
    assert report["seen"] == {name: [expected] for name in METHODS}, report
    assert ("request thread" if in_request_thread else "event loop") in report["path"], report
