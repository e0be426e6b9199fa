"""The Tango layer alone: the real device class on fake Lima2 devices, in its own process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import tango
from tango.test_context import DeviceTestContext

from lima2_conductor.cli.launcher import wait_for
from lima2_conductor.device.settings import SETTINGS
from lima2_conductor.device.specs import VIEW_ATTRS
from tests.device.fake_conductor import FakeBackedConductor
from tests.device.thread_probe import PATHS, spawned_servers

PROPERTIES = {"control_device": "fake/control/0", "receiver_devices": ["fake/rcv/0", "fake/rcv/1"]}


@pytest.fixture(scope="module", params=list(PATHS))
def device(request: pytest.FixtureRequest) -> Iterator[tango.DeviceProxy]:
    """The conductor with its standard methods in the request thread, then in the event
    loop (``LIMA2_CONDUCTOR_REQUEST_THREAD_HOOKS=0``): every test runs on both paths. A
    fresh interpreter for the server (spawned): a forked one would inherit this process's
    asyncio state (other test modules close their event loops) and its device classes."""
    with (
        spawned_servers(request.param),
        DeviceTestContext(FakeBackedConductor, properties=PROPERTIES, process=True, timeout=60) as proxy,
    ):
        wait_for(lambda: proxy.State() != tango.DevState.INIT, 20, "first observation")
        yield proxy


@pytest.fixture
def conductor(device: tango.DeviceProxy) -> tango.DeviceProxy:
    device.Stop()
    device.Reset()
    wait_for(lambda: device.run_state == "IDLE", 5, "reset")
    return device


def reason(info: pytest.ExceptionInfo[tango.DevFailed]) -> str:
    return info.value.args[0].reason


def test_state_and_a_whole_run(conductor: tango.DeviceProxy) -> None:
    c = conductor
    assert c.State() == tango.DevState.ON
    uid = c.Prepare('{"control": {"acq": {"nb_frames": 20}}}')
    assert c.State() == tango.DevState.STANDBY and c.acq_uuid == uid and c.nb_frames == 20
    c.Start()
    assert c.State() == tango.DevState.RUNNING and c.running
    c.FakeEnd(10)
    wait_for(lambda: c.run_state == "DONE", 5, "end of run")
    assert c.State() == tango.DevState.ON and c.nb_frames_processed == 20 and c.nb_frames_ready == 20


def test_the_server_takes_the_path_asked_for(device: tango.DeviceProxy, request: pytest.FixtureRequest) -> None:
    path = device.RequestThreadPath()
    if request.node.callspec.params["device"] == "event-loop":
        assert "event loop" in path and "=0" in path, path
    else:
        assert "request thread" in path or "does not leave" in path, path


def test_every_attribute_has_metadata(device: tango.DeviceProxy) -> None:
    for spec in VIEW_ATTRS:
        cfg = device.get_attribute_config(spec.name)
        assert cfg.label == spec.label and cfg.description == spec.doc
        assert cfg.unit == spec.unit
        expected = tango.DispLevel.EXPERT if spec.expert else tango.DispLevel.OPERATOR
        assert cfg.disp_level == expected, spec.name
    for name in ("device_states", "progress_counters", "det_info", "frame_channels", "master_files"):
        assert device.get_attribute_config(name).disp_level == tango.DispLevel.EXPERT
    assert device.get_attribute_config("acq_expo_time").unit == "s"
    for cmd in ("Prepare", "Start", "Stop", "Close", "Reset", "Trigger"):
        assert "allowed" in device.command_query(cmd).in_type_desc.lower(), cmd


def test_memorized_settings_have_a_set_point(device: tango.DeviceProxy) -> None:
    for setting in SETTINGS:
        value = device.read_attribute(setting.name)
        assert value.w_value is not None, setting.name


def test_every_watched_attribute_has_change_events(conductor: tango.DeviceProxy) -> None:
    c = conductor
    seen: dict[str, list[Any]] = {}

    def callback(event: tango.EventData) -> None:
        if not event.err:
            seen.setdefault(event.attr_value.name.lower(), []).append(event.attr_value.value)

    names = ["State", "Status", *(a.name for a in VIEW_ATTRS), *(s.name for s in SETTINGS), "last_image_ready"]
    ids = [c.subscribe_event(n, tango.EventType.CHANGE_EVENT, callback) for n in names]
    try:
        c.Prepare('{"control": {"acq": {"nb_frames": 4}}}')
        c.Start()
        c.FakeEnd(2)
        wait_for(lambda: c.run_state == "DONE", 5, "end of run")
        wait_for(lambda: "done" in [str(v).lower() for v in seen.get("run_state", [])], 5, "run_state events")
        assert {n.lower() for n in names} <= set(seen)  # every one gave at least its first value
        assert seen["nb_frames_processed"][-1] == 4
    finally:
        for i in ids:
            c.unsubscribe_event(i)


def test_bad_input_changes_nothing(conductor: tango.DeviceProxy) -> None:
    c = conductor
    for bad in ("{", '{"control": {"acq": {"expo_time": NaN}}}', "[" * 5000 + "]" * 5000, '{"ctl": {}}'):
        with pytest.raises(tango.DevFailed) as info:
            c.Prepare(bad)
        assert reason(info) == "PARAM_ERROR"
        assert c.State() == tango.DevState.ON and c.run_state == "IDLE"
    assert "Prepare refused" in c.last_error
    with pytest.raises(tango.DevFailed) as info:
        c.Start()
    assert reason(info) == "OPERATION_NOT_ALLOWED"
    with pytest.raises(tango.DevFailed) as info:
        c.GetFrame([[0], ["frame"]])
    assert reason(info) == "NOT_FOUND"
    before = c.acq_expo_time
    for value in (float("inf"), float("nan")):  # Tango refuses these itself
        with pytest.raises(tango.DevFailed) as info:
            c.write_attribute("acq_expo_time", value)
        assert reason(info) in ("PARAM_ERROR", "API_WAttrOutsideLimit")
    assert c.acq_expo_time == before
    with pytest.raises(tango.DevFailed) as info:
        c.latency_time = -1.0  # the Lima1 name of acq_latency_time; below its declared min_value
    assert reason(info) == "API_WAttrOutsideLimit"
    c.latency_time = 0.25
    assert c.acq_latency_time == 0.25
    c.acq_latency_time = 0.0


def test_a_bug_is_an_internal_error(conductor: tango.DeviceProxy) -> None:
    c = conductor
    c.FakeBug("prepare")
    try:
        with pytest.raises(tango.DevFailed) as info:
            c.Prepare("")
    finally:
        c.FakeBug("")
    assert reason(info) == "INTERNAL_ERROR"
    assert c.State() == tango.DevState.ON and c.run_state == "IDLE"


def test_receiver_fault_and_reset(conductor: tango.DeviceProxy) -> None:
    c = conductor
    c.Prepare("")
    c.Start()
    c.FakeState(json.dumps({"rcv1": "FAULT"}))
    wait_for(lambda: c.run_state == "FAULT", 5, "fault seen")
    assert c.State() == tango.DevState.FAULT and "rcv1 went FAULT: boom" in c.Status()
    info = json.loads(c.GetInfo())
    assert info["run_state"] == "FAULT" and info["errors"]
    c.Reset()
    assert c.State() == tango.DevState.ON and c.errors in (None, [], ())
