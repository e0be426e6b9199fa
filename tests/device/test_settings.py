"""The memorized settings on the real device class (fake Lima2 devices, no Tango database):
declared limits, values no Prepare can use, the Lima1 alias of the latency time."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest
import tango
from tango.test_context import DeviceTestContext

from lima2_conductor.cli.launcher import wait_for
from lima2_conductor.core.lima2 import ACQ_LIMITS, SECONDS_TO_US
from lima2_conductor.core.params import build_prepare_params, settings_overrides
from lima2_conductor.device.settings import SETTINGS
from lima2_conductor.simulator.schemas import acq_params_schema, proc_params_schema
from tests.device.fake_conductor import FakeBackedConductor

PROPERTIES = {"control_device": "fake/control/0", "receiver_devices": ["fake/rcv/0", "fake/rcv/1"]}
LIMITED = {s.name: s for s in SETTINGS if s.limits is not None}
ACQ_KEY = {"acq_nb_frames": "nb_frames", "acq_expo_time": "expo_time", "acq_latency_time": "latency_time"}


@pytest.fixture(scope="module")
def device() -> Iterator[tango.DeviceProxy]:
    method = multiprocessing.get_start_method()
    multiprocessing.set_start_method("spawn", force=True)  # see tests/device/test_device.py
    try:
        with DeviceTestContext(FakeBackedConductor, properties=PROPERTIES, process=True, timeout=60) as proxy:
            wait_for(lambda: proxy.State() != tango.DevState.INIT, 20, "first observation")
            yield proxy
    finally:
        multiprocessing.set_start_method(method, force=True)


@pytest.fixture
def conductor(device: tango.DeviceProxy) -> Iterator[tango.DeviceProxy]:
    device.Stop()
    device.Reset()
    wait_for(lambda: device.run_state == "IDLE", 5, "reset")
    yield device
    device.acq_nb_frames, device.acq_expo_time, device.acq_latency_time = 10, 0.001, 0.0


def reason(info: pytest.ExceptionInfo[tango.DevFailed]) -> str:
    return info.value.args[0].reason


def test_the_settings_that_have_limits_declare_them() -> None:
    assert {"acq_nb_frames", "acq_expo_time", "acq_latency_time", "latency_time"} <= set(LIMITED)


def test_declared_limits_are_the_lima2_ranges(device: tango.DeviceProxy) -> None:
    """One range per parameter (``ACQ_LIMITS``): the attribute's, the schema's, the device's."""
    schema = acq_params_schema(64, 64)["properties"]["acq"]["properties"]
    for name, setting in LIMITED.items():
        cfg = device.get_attribute_config(name)
        assert (float(cfg.min_value), float(cfg.max_value)) == setting.limits, name
        low, high = ACQ_LIMITS[ACQ_KEY[setting.key]]
        assert (schema[ACQ_KEY[setting.key]]["minimum"], schema[ACQ_KEY[setting.key]]["maximum"]) == (low, high)
        scale = 1 if setting.dtype is int else SECONDS_TO_US
        assert (round(setting.limits[0] * scale), round(setting.limits[1] * scale)) == (low, high), name


@pytest.mark.parametrize("end", [0, 1])
def test_every_value_within_the_limits_makes_valid_prepare_params(end: int) -> None:
    settings = {s.name: s.default for s in SETTINGS if not s.alias_of}
    settings.update({name: s.limits[end] for name, s in LIMITED.items() if not s.alias_of})  # type: ignore[index]
    build_prepare_params(
        {}, acq_params_schema(64, 64), acq_params_schema(64, 64), proc_params_schema(), {**settings_overrides(settings)}
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("acq_nb_frames", 2**31),
        ("acq_nb_frames", 2**63 - 1),
        ("acq_nb_frames", -1),
        ("acq_expo_time", 1e30),
        ("acq_expo_time", 1e-12),  # 0 us once rounded
        ("acq_expo_time", 0.0),
        ("acq_latency_time", 1e30),
        ("acq_latency_time", -1.0),
        ("latency_time", -1.0),
        ("latency_time", 1e30),
    ],
)
def test_values_no_prepare_can_use_are_refused(conductor: tango.DeviceProxy, name: str, value: float) -> None:
    """Tango refuses a value outside the declared limits before the device sees it."""
    before = {s: conductor.read_attribute(s) for s in LIMITED}
    with pytest.raises(tango.DevFailed) as info:
        conductor.write_attribute(name, value)
    assert reason(info) == "API_WAttrOutsideLimit"
    for s, old in before.items():
        now = conductor.read_attribute(s)
        assert (now.value, now.w_value) == (old.value, old.w_value), s
    conductor.Prepare("")


def test_the_device_checks_the_limits_too(conductor: tango.DeviceProxy) -> None:
    """Limits widened in the attribute configuration (as Jive can) do not let an unusable
    value in: the device refuses it with PARAM_ERROR."""
    widened = {"acq_nb_frames": ("-1", str(2**62)), "acq_expo_time": ("1e-300", "1e300")}
    configs = [conductor.get_attribute_config(n) for n in widened]
    wide = []
    for cfg in configs:
        w = conductor.get_attribute_config(cfg.name)
        w.min_value, w.max_value = widened[cfg.name]
        wide.append(w)
    conductor.set_attribute_config(wide)
    try:
        for name, value in (("acq_nb_frames", 2**31), ("acq_expo_time", 1e-12), ("acq_expo_time", 1e30)):
            before = conductor.read_attribute(name).value
            with pytest.raises(tango.DevFailed) as info:
                conductor.write_attribute(name, value)
            assert reason(info) == "PARAM_ERROR", name
            assert name in info.value.args[0].desc and "must be within" in info.value.args[0].desc
            assert conductor.read_attribute(name).value == before
    finally:
        conductor.set_attribute_config(configs)
    conductor.Prepare("")


def test_the_limits_themselves_are_usable(conductor: tango.DeviceProxy) -> None:
    conductor.acq_expo_time = LIMITED["acq_expo_time"].limits[0]  # type: ignore[index]
    conductor.acq_nb_frames = LIMITED["acq_nb_frames"].limits[1]  # type: ignore[index]
    conductor.Prepare("")
    assert conductor.nb_frames == 2**31 - 1


def test_latency_time_and_acq_latency_time_are_one_value(conductor: tango.DeviceProxy) -> None:
    for written, other in (("acq_latency_time", "latency_time"), ("latency_time", "acq_latency_time")):
        for value in (0.001, 0.0025):
            conductor.write_attribute(written, value)
            for name in (written, other):
                reply = conductor.read_attribute(name)
                assert (reply.value, reply.w_value) == (value, value), (written, name)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("saving_directory", "relative/dir"),
        ("saving_directory", ""),
        ("saving_prefix", "x" * 250),  # its master file name would be longer than a file name can be
        ("saving_prefix", "a/b"),
    ],
)
def test_saving_values_no_prepare_can_use_are_refused(conductor: tango.DeviceProxy, name: str, value: str) -> None:
    before = conductor.read_attribute(name)
    with pytest.raises(tango.DevFailed) as info:
        conductor.write_attribute(name, value)
    assert reason(info) == "PARAM_ERROR" and name in info.value.args[0].desc
    after = conductor.read_attribute(name)
    assert (after.value, after.w_value) == (before.value, before.w_value)
    conductor.Prepare('{"processing": {"saving": {"enabled": true}}}')
