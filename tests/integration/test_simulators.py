"""The simulator servers under NosqlTangoDB, driven by a plain DeviceProxy client."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
import tango

from lima2_conductor.cli.launcher import CONTROL, LocalSystem, receiver_name, wait_for
from lima2_conductor.core.lima2 import DeviceState
from lima2_conductor.core.params import defaults_from_schema
from lima2_conductor.simulator.frames import FrameGenerator, stamped_index


def schema(cls: str, attr: str) -> dict:
    return json.loads(tango.Database().get_class_attribute_property(cls, attr)[attr]["schema"][0])


@pytest.fixture
def devices(system2: LocalSystem) -> tuple[tango.DeviceProxy, list[tango.DeviceProxy]]:
    ctl = tango.DeviceProxy(CONTROL)
    rcvs = [tango.DeviceProxy(receiver_name(i)) for i in range(2)]
    for d in (ctl, *rcvs):
        d.Stop()
        d.Reset()
    return ctl, rcvs


def prepare(ctl: tango.DeviceProxy, rcvs: list[tango.DeviceProxy], acq: dict, proc: dict) -> str:
    uid = str(uuid.uuid1())
    ctl.acq_params = json.dumps(acq)
    for i, r in enumerate(rcvs):
        r.ping()
        r.acq_params = json.dumps(acq)
        p = json.loads(json.dumps(proc))
        p["saving"]["filename_rank"] = i
        r.proc_params = json.dumps(p)
    for d in (ctl, *rcvs):
        d.Prepare(uid)
    return uid


def test_120_frames_two_receivers_saved_in_order(devices, data_dir: Path) -> None:
    ctl, rcvs = devices
    acq = defaults_from_schema(schema("LimaSimulatorControl", "acq_params"))
    acq["acq"].update(nb_frames=120, expo_time=20_000)
    proc = defaults_from_schema(schema("LimaProcessingLegacy", "proc_params"))
    proc["saving"].update(enabled=True, base_path=str(data_dir), nb_frames_per_file=40)
    prepare(ctl, rcvs, acq, proc)
    assert [d.acq_state for d in (ctl, *rcvs)] == [DeviceState.PREPARED] * 3
    for d in (*rcvs, ctl):
        d.Start()
    wait_for(lambda: all(d.acq_state == DeviceState.IDLE for d in (ctl, *rcvs)), 20, "end of acquisition")
    assert ctl.nb_frames_acquired == 120
    assert [r.nb_frames_xferred for r in rcvs] == [60, 60]
    gen = FrameGenerator(acq, 512, 512)
    for rank in range(2):
        local = []
        for k in range(2):
            with h5py.File(data_dir / f"lima2_{rank}_{k:05d}.h5") as f:
                data = f["entry_0000/instrument/detector/data"]
                assert data.shape == ((40 if k == 0 else 20), 512, 512)
                local.extend(stamped_index(frame) for frame in data)
                np.testing.assert_array_equal(data[3], gen.frame(rank + 2 * (40 * k + 3))[0])
        assert local == list(range(rank, 120, 2))


def test_stop_leaves_receivers_idle_and_the_control_stopped(devices) -> None:
    """As the real devices (and what the lima2-client conductor counts as a receiver's end)."""
    ctl, rcvs = devices
    acq = defaults_from_schema(schema("LimaSimulatorControl", "acq_params"))
    acq["acq"].update(nb_frames=0, expo_time=1000)  # endless: only Stop ends it
    proc = defaults_from_schema(schema("LimaProcessingLegacy", "proc_params"))
    prepare(ctl, rcvs, acq, proc)
    for d in (*rcvs, ctl):
        d.Start()
    wait_for(lambda: all(r.nb_frames_xferred > 0 for r in rcvs), 10, "frames on both receivers")
    for d in (ctl, *rcvs):
        d.Stop()
    wait_for(lambda: all(r.acq_state != DeviceState.RUNNING for r in rcvs), 10, "receivers stopped")
    assert [r.acq_state for r in rcvs] == [DeviceState.IDLE] * 2
    assert ctl.acq_state == DeviceState.STOPPED


def test_reads_of_pushed_attributes_come_from_the_buffer_and_never_fail(devices) -> None:
    """``acq_state`` and ``nb_frames_xferred`` are pushed with their values: clients read
    them from Tango's polling buffer (filled by each push), so a read never meets a push
    (in a server whose requests are not serialised it would find no value)."""
    ctl, rcvs = devices
    for d, names in ((ctl, ["acq_state"]), *((r, ["acq_state", "nb_frames_xferred"]) for r in rcvs)):
        for name in names:  # set up by each device once its server has started
            wait_for(lambda d=d, name=name: d.is_attribute_polled(name), 10, f"{d.dev_name()}/{name} polled")
            assert d.get_attribute_poll_period(name) == 0, (d.dev_name(), name)  # externally filled
    failures: list[str] = []
    reads = [0]
    done = threading.Event()

    def read(device: str, name: str) -> None:
        proxy = tango.DeviceProxy(device)
        while not done.is_set():
            try:
                proxy.read_attribute(name)
                reads[0] += 1
            except tango.DevFailed as exc:
                failures.append(f"{device}/{name}: {exc.args[0].reason}")

    targets = [(CONTROL, "acq_state"), (CONTROL, "nb_frames_acquired"), (receiver_name(0), "nb_frames_xferred")]
    threads = [threading.Thread(target=read, args=t) for t in targets]
    for t in threads:
        t.start()
    try:
        acq = defaults_from_schema(schema("LimaSimulatorControl", "acq_params"))
        acq["acq"].update(nb_frames=100, expo_time=500)
        proc = defaults_from_schema(schema("LimaProcessingLegacy", "proc_params"))
        for _ in range(5):
            prepare(ctl, rcvs, acq, proc)
            assert [d.acq_state for d in (ctl, *rcvs)] == [DeviceState.PREPARED] * 3  # the buffer follows
            assert [r.nb_frames_xferred for r in rcvs] == [0, 0]
            for d in (*rcvs, ctl):
                d.Start()
            wait_for(lambda: all(d.acq_state == DeviceState.IDLE for d in (ctl, *rcvs)), 20, "end of acquisition")
            assert [r.nb_frames_xferred for r in rcvs] == [50, 50]
        acq["acq"].update(nb_frames=0, expo_time=100)  # endless, fast: thousands of pushes
        prepare(ctl, rcvs, acq, proc)
        for d in (*rcvs, ctl):
            d.Start()
        wait_for(lambda: all(r.nb_frames_xferred >= 3000 for r in rcvs), 30, "3000 frames on each receiver")
        for d in (ctl, *rcvs):
            d.Stop()
        wait_for(lambda: all(r.acq_state != DeviceState.RUNNING for r in rcvs), 10, "receivers stopped")
    finally:
        done.set()
        for t in threads:
            t.join()
    assert reads[0] > 0
    assert failures == []


def test_an_operator_removing_the_polling_loses_nothing(devices) -> None:
    """Polling removed from outside (Jive, the admin device): the device keeps working and
    its attribute is read live; Init serves it from the buffer again."""
    ctl, rcvs = devices
    wait_for(lambda: ctl.is_attribute_polled("acq_state"), 10, "acq_state polled")
    tango.DeviceProxy(ctl.adm_name()).RemObjPolling([ctl.dev_name(), "attribute", "acq_state"])
    try:
        acq = defaults_from_schema(schema("LimaSimulatorControl", "acq_params"))
        acq["acq"].update(nb_frames=20, expo_time=1000)
        prepare(ctl, rcvs, acq, defaults_from_schema(schema("LimaProcessingLegacy", "proc_params")))
        assert ctl.acq_state == DeviceState.PREPARED
        for d in (*rcvs, ctl):
            d.Start()
        wait_for(lambda: all(d.acq_state == DeviceState.IDLE for d in (ctl, *rcvs)), 20, "end of acquisition")
        assert ctl.nb_frames_acquired == 20
    finally:
        ctl.Init()
    wait_for(lambda: ctl.is_attribute_polled("acq_state"), 10, "acq_state polled again")
    assert ctl.acq_state == DeviceState.IDLE


@pytest.mark.parametrize(
    "value, field",
    [
        ("{not json", "not valid JSON"),
        ('{"acq": {"nb_frames": -1}}', "$.acq.nb_frames"),
        ('{"acq": {"trigger_mode": "internall"}}', "$.acq.trigger_mode"),
        ('{"acq": {"nb_framez": 3}}', "nb_framez"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_bad_params_name_the_field_and_leave_device_idle(devices, value: str, field: str) -> None:
    ctl, rcvs = devices
    before = ctl.acq_params
    for dev in (ctl, rcvs[0]):
        with pytest.raises(tango.DevFailed) as info:
            dev.write_attribute("acq_params", value)
        err = info.value.args[0]
        assert err.reason == "LIMA_Exception"
        assert field in json.loads(err.desc)["what"]
        assert dev.acq_state == DeviceState.IDLE
    assert ctl.acq_params == before


def test_fault_knobs_prepare_and_frame(devices) -> None:
    ctl, rcvs = devices
    acq = defaults_from_schema(schema("LimaSimulatorControl", "acq_params"))
    acq["acq"].update(nb_frames=50, expo_time=1000)
    proc = defaults_from_schema(schema("LimaProcessingLegacy", "proc_params"))
    rcvs[1].sim_fail_prepare = True
    with pytest.raises(tango.DevFailed, match="simulated Prepare failure"):
        prepare(ctl, rcvs, acq, proc)
    assert rcvs[1].acq_state == DeviceState.IDLE
    rcvs[1].sim_fail_at_frame = 21
    prepare(ctl, rcvs, acq, proc)
    for d in (*rcvs, ctl):
        d.Start()
    wait_for(lambda: rcvs[1].acq_state == DeviceState.FAULT, 10, "receiver FAULT")
    assert "frame 21" in json.loads(rcvs[1].last_error)["what"]
    assert rcvs[1].nb_frames_xferred == 10  # frames 1, 3, ..., 19
    rcvs[1].Reset()
    assert rcvs[1].acq_state == DeviceState.IDLE


def test_processing_device_is_found_and_erased(devices) -> None:
    ctl, rcvs = devices
    acq = defaults_from_schema(schema("LimaSimulatorControl", "acq_params"))
    proc = defaults_from_schema(schema("LimaProcessingLegacy", "proc_params"))
    uid = prepare(ctl, rcvs, acq, proc)
    db = tango.Database()
    names = sorted(db.get_device_exported(f"*/limaprocessing/{uid}*"), key=lambda n: int(n.split("@")[-1]))
    assert [n.split("@")[-1] for n in names] == ["0", "1"]
    assert db.get_device_info(names[0]).class_name == "LimaProcessingLegacy"
    assert json.loads(db.get_device_property(names[1], "frame_info")["frame_info"][0])["dimensions"] == {
        "x": 512,
        "y": 512,
    }
    assert uid in rcvs[0].pipelines
    rcvs[0].erasePipeline(uid)
    assert uid not in rcvs[0].pipelines
    with pytest.raises(tango.DevFailed):
        rcvs[0].erasePipeline(uid)
