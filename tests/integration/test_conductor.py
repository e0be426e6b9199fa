"""The Lima2Conductor device with NosqlTangoDB and every server as a subprocess,
driven by a plain DeviceProxy as Jive or Bliss would."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import h5py
import pytest
import tango

from lima2_conductor.cli.launcher import CONDUCTOR, LocalSystem, receiver_name, wait_for
from lima2_conductor.simulator.frames import stamped_index
from tests.conftest import DEFAULT
from tests.integration.conftest import reason, run_to_end


def test_acquisition_states_events_and_counters(conductor: tango.DeviceProxy) -> None:
    c = conductor
    c.acq_nb_frames = 120
    c.acq_expo_time = 0.02
    states: list[str] = []
    counts: list[int] = []
    ids = [
        c.subscribe_event(
            "State", tango.EventType.CHANGE_EVENT, lambda e: e.err or states.append(str(e.attr_value.value))
        ),
        c.subscribe_event(
            "nb_frames_xferred", tango.EventType.CHANGE_EVENT, lambda e: e.err or counts.append(e.attr_value.value)
        ),
    ]
    try:
        uid = c.Prepare("")
        assert c.State() == tango.DevState.STANDBY
        assert c.acq_uuid == uid
        c.Start()
        assert c.State() == tango.DevState.RUNNING
        wait_for(lambda: c.run_state in ("DONE", "FAULT"), 20, "end of run")
        assert c.run_state == "DONE"
        assert c.State() == tango.DevState.ON
        assert c.nb_frames_xferred == 120
        assert c.nb_frames_ready == 120
        per = json.loads(c.progress_counters)["nb_frames_xferred"]["per_receiver"]
        assert per == {receiver_name(0): 60, receiver_name(1): 60}
        wait_for(lambda: counts and counts[-1] == 120, 5, "final counter event")
        assert len(counts) > 3 and counts == sorted(counts)
        assert "STANDBY" in states and "RUNNING" in states and states[-1] == "ON"
    finally:
        for i in ids:
            c.unsubscribe_event(i)


def test_detector_attributes(conductor: tango.DeviceProxy) -> None:
    c = conductor
    assert c.det_plugin == "Simulator"
    assert (c.det_width, c.det_height) == (512, 512)
    assert list(c.det_pixel_size) == [75e-6, 75e-6]
    assert "software" in json.loads(c.det_capabilities)["trigger_modes"]
    assert c.topology_name == "round_robin"
    assert list(c.receivers) == [receiver_name(0), receiver_name(1)]
    assert c.get_attribute_config("acq_expo_time").unit == "s"


@pytest.mark.parametrize(
    "params, where",
    [
        ("{not json", "line 1"),
        ('["a"]', "JSON object"),
        ('{"control": {"acq": {"nb_frames": -1}}}', "$.acq.nb_frames"),
        ('{"control": {"acq": {"nb_frames": 1.5}}}', "$.acq.nb_frames"),
        ('{"control": {"acq": {"nb_frames": "10"}}}', "$.acq.nb_frames"),
        ('{"control": {"acq": {"nb_frames": 1099511627776}}}', "$.acq.nb_frames"),
        ('{"control": {"acq": {"trigger_mode": "internall"}}}', "allowed: internal"),
        ('{"processing": {"saving": {"nb_frames_per_fil": 3}}}', "nb_frames_per_fil"),
        ('{"detector": {}}', "allowed keys"),
    ],
)
def test_bad_params_are_param_errors_with_state_unchanged(
    conductor: tango.DeviceProxy, params: str, where: str
) -> None:
    with pytest.raises(tango.DevFailed) as info:
        conductor.Prepare(params)
    assert reason(info) == "PARAM_ERROR"
    assert where in info.value.args[0].desc
    assert conductor.run_state == "IDLE"
    assert conductor.State() == tango.DevState.ON


def test_wrong_command_order(conductor: tango.DeviceProxy) -> None:
    c = conductor
    with pytest.raises(tango.DevFailed) as info:
        c.Start()
    assert reason(info) == "OPERATION_NOT_ALLOWED"
    with pytest.raises(tango.DevFailed) as info:
        c.Trigger()
    assert reason(info) == "OPERATION_NOT_ALLOWED"
    c.Stop()  # harmless when idle
    c.acq_nb_frames = 0  # endless
    c.Prepare("")
    c.Start()
    for cmd in ("Start", "Prepare", "Reset"):
        with pytest.raises(tango.DevFailed) as info:
            c.command_inout(cmd, "") if cmd == "Prepare" else c.command_inout(cmd)
        assert reason(info) == "OPERATION_NOT_ALLOWED"
        assert c.State() == tango.DevState.RUNNING
    c.Stop()
    wait_for(lambda: c.run_state == "STOPPED", 10, "stopped")
    assert c.nb_frames_xferred > 0


def test_concurrent_prepares_one_wins(conductor: tango.DeviceProxy) -> None:
    tango.DeviceProxy(receiver_name(0)).sim_prepare_delay = 2.0  # well inside the client's 3 s timeout
    results: list[str] = []

    def prepare() -> None:
        try:
            tango.DeviceProxy(CONDUCTOR).Prepare("")
            results.append("ok")
        except tango.DevFailed as exc:
            results.append(exc.args[0].reason)

    first = threading.Thread(target=prepare)
    first.start()
    wait_for(lambda: conductor.run_state == "PREPARING", 5, "first Prepare under way")
    prepare()  # the second one, while the first is certainly still preparing
    first.join(10)
    assert results == ["OPERATION_NOT_ALLOWED", "ok"]
    assert conductor.State() == tango.DevState.STANDBY


def test_stop_during_slow_prepare_cancels_and_resets(conductor: tango.DeviceProxy) -> None:
    tango.DeviceProxy(receiver_name(1)).sim_prepare_delay = 2.0
    errors: list[str] = []

    def prepare() -> None:
        try:
            tango.DeviceProxy(CONDUCTOR).Prepare("")
        except tango.DevFailed as exc:
            errors.append(exc.args[0].reason)

    t = threading.Thread(target=prepare)
    t.start()
    wait_for(lambda: conductor.run_state == "PREPARING", 5, "preparing")
    conductor.Stop()  # cancels the prepare and returns once it has ended, rolled back
    assert conductor.run_state != "PREPARING"
    t.join(10)
    assert errors == ["OPERATION_NOT_ALLOWED"]
    wait_for(lambda: conductor.State() == tango.DevState.ON, 5, "ON after cancelled prepare")
    tango.DeviceProxy(receiver_name(1)).sim_prepare_delay = 0.0
    conductor.Prepare("")
    run_to_end(conductor)
    assert conductor.run_state == "DONE"


def test_failed_receiver_prepare_rolls_back(conductor: tango.DeviceProxy) -> None:
    tango.DeviceProxy(receiver_name(1)).sim_fail_prepare = True
    with pytest.raises(tango.DevFailed) as info:
        conductor.Prepare("")
    assert reason(info) == "DEVICE_ERROR"
    assert receiver_name(1) in info.value.args[0].desc
    wait_for(
        lambda: json.loads(conductor.device_states) == dict.fromkeys(json.loads(conductor.device_states), "IDLE"),
        5,
        "rollback",
    )
    assert conductor.State() == tango.DevState.ON


def test_receiver_fault_mid_run(conductor: tango.DeviceProxy) -> None:
    tango.DeviceProxy(receiver_name(0)).sim_fail_at_frame = 50
    conductor.acq_nb_frames = 400
    conductor.Prepare("")
    conductor.Start()
    wait_for(lambda: conductor.run_state == "FAULT", 10, "run FAULT")
    assert receiver_name(0) in conductor.Status()
    assert "frame 50" in conductor.last_error
    conductor.Reset()
    conductor.acq_nb_frames = 10
    conductor.Prepare("")
    run_to_end(conductor)
    assert conductor.run_state == "DONE"


def test_receiver_killed_then_restarted(conductor: tango.DeviceProxy, system: LocalSystem) -> None:
    c = conductor
    c.acq_nb_frames = 0
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.nb_frames_xferred > 10, 10, "frames flowing")
    system.processes["simulator_rcv2"].signal(signal.SIGKILL)
    wait_for(lambda: c.run_state == "FAULT", 5, "run FAULT", interval=0.01)  # detection time: benchmarks/
    assert c.State() in (tango.DevState.DISABLE, tango.DevState.FAULT)
    assert receiver_name(1) in c.Status()
    assert json.loads(c.device_states)[receiver_name(1)] == "OFFLINE"
    with pytest.raises(tango.DevFailed) as info:
        c.Reset()
    assert reason(info) in ("DEVICE_OFFLINE", "DEVICE_TIMEOUT")
    with pytest.raises(tango.DevFailed) as info:
        c.Prepare("")
    assert reason(info) == "DEVICE_OFFLINE"
    assert receiver_name(1) in info.value.args[0].desc
    system.processes["simulator_rcv2"].popen.wait(5)
    system.start_server("lima2_conductor.simulator.server", "simulator_rcv2", [receiver_name(1)])
    wait_for(lambda: c.State() != tango.DevState.DISABLE, 10, "reconnected")
    c.Reset()
    c.acq_nb_frames = 20
    c.Prepare("")
    run_to_end(c)
    assert c.run_state == "DONE" and c.nb_frames_xferred == 20


def test_saving_through_convenience_attributes(conductor: tango.DeviceProxy, data_dir: Path) -> None:
    c = conductor
    c.saving_enabled = True
    c.saving_directory = str(data_dir)
    c.saving_prefix = "scan7"
    c.acq_nb_frames = 30
    c.Prepare('{"processing": {"saving": {"nb_frames_per_file": 10}}}')
    run_to_end(c)
    assert c.nb_frames_saved == 30
    files = [f"scan7_{r}_{k:05d}.h5" for r in range(2) for k in range(2)]
    assert sorted(p.name for p in data_dir.iterdir()) == sorted([*files, "scan7_master.h5"])
    with pytest.raises(tango.DevFailed) as info:
        c.Prepare("")  # the master file exists and the policy is abort
    assert reason(info) == "SAVING_ERROR"
    assert "scan7_master.h5 exists" in info.value.args[0].desc
    (data_dir / "scan7_master.h5").unlink()
    with pytest.raises(tango.DevFailed) as info:
        c.Prepare("")  # the receivers' files exist
    assert reason(info) == "DEVICE_ERROR"
    assert "exists" in info.value.args[0].desc
    assert c.State() == tango.DevState.ON
    with pytest.raises(tango.DevFailed) as info:
        c.Prepare(json.dumps({"processing": {"saving": {"base_path": str(data_dir / "missing")}}}))
    assert reason(info) == "SAVING_ERROR"


def test_hung_receiver_keeps_the_conductor_responsive(conductor: tango.DeviceProxy, system: LocalSystem) -> None:
    c = conductor
    c.acq_nb_frames = 0
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.nb_frames_xferred > 10, 10, "frames flowing")
    proc = system.processes["simulator_rcv1"]
    proc.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: c.run_state == "FAULT", 10, "run FAULT")
        quick = tango.DeviceProxy(CONDUCTOR)
        quick.set_timeout_millis(1000)  # State/Status come from the cache: a call behind the hung device would time out
        for _ in range(5):
            quick.State()
            quick.Status()
        assert receiver_name(0) in c.Status()
    finally:
        proc.signal(signal.SIGCONT)
    wait_for(lambda: json.loads(c.device_states)[receiver_name(0)] != "OFFLINE", 15, "receiver back")
    c.Reset()
    c.acq_nb_frames = 10
    c.Prepare("")
    run_to_end(c)
    assert c.run_state == "DONE"


def test_conductor_restart_adopts_the_running_run(conductor: tango.DeviceProxy, system: LocalSystem) -> None:
    c = conductor
    c.acq_nb_frames = 0
    uid = c.Prepare("")
    c.Start()
    wait_for(lambda: c.nb_frames_xferred > 5, 10, "frames flowing")
    system.processes.pop("simulator").stop()
    system.start_conductor(DEFAULT)
    c = tango.DeviceProxy(CONDUCTOR)
    wait_for(lambda: c.run_state == "RUNNING", 10, "the running run adopted")
    assert c.acq_uuid == uid and json.loads(c.GetInfo())["adopted"]
    assert c.State() == tango.DevState.RUNNING
    assert set(json.loads(c.device_states).values()) == {"RUNNING"}
    wait_for(lambda: c.nb_frames_xferred > 10, 10, "progress of the adopted run")
    c.Stop()
    wait_for(lambda: c.run_state == "STOPPED", 10, "stopped")
    c.acq_nb_frames = 10  # a new run right away: the conductor resets the stopped devices itself
    c.Prepare("")
    run_to_end(c)
    assert c.run_state == "DONE"


def test_conductor_killed_mid_run_leaves_a_master_file(
    conductor: tango.DeviceProxy, system: LocalSystem, data_dir: Path
) -> None:
    c = conductor
    c.acq_nb_frames = 0
    c.acq_expo_time = 0.002
    c.Prepare(
        json.dumps({"processing": {"saving": {"enabled": True, "base_path": str(data_dir), "nb_frames_per_file": 100}}})
    )
    c.Start()
    master = data_dir / "lima2_master.h5"
    wait_for(master.exists, 20, "a master file checkpoint")
    system.processes.pop("simulator").signal(signal.SIGKILL)
    system.start_conductor(DEFAULT)
    c = tango.DeviceProxy(CONDUCTOR)
    wait_for(lambda: c.State() == tango.DevState.RUNNING, 10, "running devices observed")
    wait_for(lambda: c.run_state == "RUNNING", 10, "the run adopted")
    c.Stop()  # the receivers close their files; the adopted run's master file is completed
    wait_for(lambda: c.run_state == "STOPPED", 10, "stopped")
    saved = json.loads(c.progress_counters)["nb_frames_saved"]["per_receiver"]
    s0, s1 = (saved[receiver_name(i)] for i in range(2))
    with h5py.File(master) as f:
        data = f["entry_0000/instrument/detector/data"]
        assert data.shape[0] == min(2 * s0, 2 * s1 + 1)  # every saved frame of the contiguous prefix
        assert data.shape[0] == c.last_image_saved + 1
        assert [stamped_index(frame) for frame in data[:, :1, :]] == list(range(data.shape[0]))
    assert not list(data_dir.glob("*.tmp"))


@pytest.mark.parametrize(
    "attr, value",
    [
        ("acq_nb_frames", -1),
        ("acq_expo_time", 0.0),
        ("acq_expo_time", -0.5),
        ("acq_latency_time", -1.0),
        ("saving_prefix", "a/b"),
        ("saving_prefix", ""),
    ],
)
def test_bad_convenience_values_are_param_errors(conductor: tango.DeviceProxy, attr: str, value: object) -> None:
    """A value outside a setting's declared limits is refused by Tango itself
    (``API_WAttrOutsideLimit``, before the device is called); any other bad value by the
    device (``PARAM_ERROR``). Either way nothing changes."""
    before = conductor.read_attribute(attr).value
    with pytest.raises(tango.DevFailed) as info:
        conductor.write_attribute(attr, value)
    limited = isinstance(value, int | float)
    assert reason(info) == ("API_WAttrOutsideLimit" if limited else "PARAM_ERROR")
    assert attr in info.value.args[0].desc
    assert conductor.read_attribute(attr).value == before
    assert conductor.State() == tango.DevState.ON
