"""The conductor's memorized settings on a real Tango database (DataBaseds stores the
``__value`` of memorized attributes; NosqlTangoDB does not): the Lima1 alias
``latency_time`` memorizes ``acq_latency_time``; a write the database cannot take is
refused, never applied and then lost at the next restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tango

from lima2_conductor.cli.launcher import CONDUCTOR, Layout, wait_for

from .tango_services import MISSING, SKIP_REASON, RealTangoSystem

pytestmark = pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON)

LAYOUT = Layout()  # the names of tango_db/


@pytest.fixture(scope="module")
def system(services: RealTangoSystem) -> Iterator[RealTangoSystem]:
    services.register()
    with services.running(LAYOUT) as system:
        yield system


def conductor(system: RealTangoSystem) -> tango.DeviceProxy:
    c = system.proxy(CONDUCTOR)
    wait_for(lambda: c.State() == tango.DevState.ON, 30, "conductor ON")
    return c


def restart(system: RealTangoSystem) -> tango.DeviceProxy:
    system.processes.pop(LAYOUT.conductor_instance).stop()
    system.start_conductor(LAYOUT)
    return conductor(system)


def memorized(system: RealTangoSystem, name: str) -> list[str]:
    return list(system.database().get_device_attribute_property(CONDUCTOR, [name])[name].get("__value", []))


def test_latency_time_memorizes_acq_latency_time(system: RealTangoSystem) -> None:
    c = conductor(system)
    c.acq_latency_time = 0.001
    c.latency_time = 0.004  # the Lima1 name: not memorized itself
    assert [float(v) for v in memorized(system, "acq_latency_time")] == [0.004]
    c = restart(system)
    for name in ("acq_latency_time", "latency_time"):
        reply = c.read_attribute(name)
        assert (reply.value, reply.w_value) == (0.004, 0.004), name
    c.acq_latency_time = 0.0


def test_a_write_while_the_database_is_down_is_refused_and_not_lost(system: RealTangoSystem) -> None:
    c = conductor(system)
    c.acq_nb_frames = 300
    c.saving_enabled = True
    system.stop_db()
    try:
        for name, value in (("acq_nb_frames", 33), ("saving_enabled", False), ("latency_time", 0.5)):
            with pytest.raises(tango.DevFailed) as info:
                c.write_attribute(name, value)
            assert info.value.args[0].reason == "DEVICE_OFFLINE", name
            assert system.tango_host in info.value.args[0].desc
        assert (c.acq_nb_frames, c.saving_enabled, c.acq_latency_time) == (300, True, 0.0)
    finally:
        system.start_db()
    c = restart(system)
    assert (c.acq_nb_frames, c.saving_enabled, c.acq_latency_time) == (300, True, 0.0)
    c.saving_enabled = False
    c.acq_nb_frames = 10
