"""The generated interface reference lists every attribute and command a running device has."""

from __future__ import annotations

import json

import pytest
import tango

from docs.interface_reference import describe, to_rst
from lima2_conductor.cli.launcher import CONDUCTOR, CONTROL, LocalSystem, receiver_name
from lima2_conductor.device.conductor import Lima2Conductor
from lima2_conductor.simulator.control import LimaSimulatorControl
from lima2_conductor.simulator.receiver import LimaSimulatorReceiver


@pytest.mark.parametrize(
    ("device", "cls"),
    [(CONDUCTOR, Lima2Conductor), (CONTROL, LimaSimulatorControl), (receiver_name(0), LimaSimulatorReceiver)],
)
def test_reference_matches_the_running_device(system2c: LocalSystem, device: str, cls: type) -> None:
    proxy = tango.DeviceProxy(device)
    doc = describe(cls)
    assert sorted(a.name for a in doc.attributes) == sorted(a.name for a in proxy.attribute_list_query())
    assert sorted(c.name for c in doc.commands) == sorted(c.cmd_name for c in proxy.command_list_query())
    running = {a.name: a for a in proxy.attribute_list_query()}
    for a in doc.attributes:
        info = running[a.name]
        assert a.display_level == info.disp_level.name, a.name
        assert a.access == info.writable.name, a.name
        if a.unit:
            assert a.unit == info.unit, a.name
    for a in doc.attributes:  # what the reference says has events can be subscribed to
        if "change" in a.events or "polled" in a.events:
            event_id = proxy.subscribe_event(a.name, tango.EventType.CHANGE_EVENT, 10)
            proxy.unsubscribe_event(event_id)
    levels = {c.cmd_name: c.disp_level.name for c in proxy.command_list_query()}
    assert all(c.display_level == levels[c.name] for c in doc.commands)
    text = "\n".join(to_rst(doc))
    assert all(f"``{a.name}``" in text for a in doc.attributes)
    assert all(f"``{c.name}``" in text for c in doc.commands)


def test_reference_matches_a_processing_device(system2c: LocalSystem) -> None:
    from lima2_conductor.simulator.processing import LimaProcessingLegacy

    c = tango.DeviceProxy(CONDUCTOR)
    c.Stop()
    c.Reset()
    c.Prepare("")
    try:
        name = json.loads(c.GetInfo())["processing"][0]
        proxy = tango.DeviceProxy(name)
        doc = describe(LimaProcessingLegacy)
        assert sorted(a.name for a in doc.attributes) == sorted(a.name for a in proxy.attribute_list_query())
        assert sorted(c.name for c in doc.commands) == sorted(c.cmd_name for c in proxy.command_list_query())
    finally:
        c.Reset()
