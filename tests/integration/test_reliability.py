"""Faults and inputs a hostile beamline throws at the conductor (RELIABILITY.md): each
ends in a clear state, loses nothing, and the next acquisition works without a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tango

from lima2_conductor.cli.launcher import CONDUCTOR, CONTROL, LocalSystem, receiver_name, wait_for
from lima2_conductor.core.devencoded import decode_frame
from lima2_conductor.simulator.frames import stamped_index
from tests.integration.conftest import reason, run_to_end


def saving(data_dir: Path, per_file: int = 20, **kw: object) -> str:
    return json.dumps(
        {"processing": {"saving": {"enabled": True, "base_path": str(data_dir), "nb_frames_per_file": per_file, **kw}}}
    )


def test_prepare_right_after_a_stopped_run(conductor: tango.DeviceProxy) -> None:
    c = conductor
    c.acq_nb_frames = 0
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.nb_frames_xferred > 4, 10, "frames flowing")
    c.Stop()
    wait_for(lambda: c.run_state == "STOPPED", 10, "stopped")
    c.acq_nb_frames = 10
    c.Prepare("")  # no Reset: the conductor brings the devices back itself
    run_to_end(c)
    assert c.run_state == "DONE" and c.nb_frames_xferred == 10


def test_close_releases_every_device(conductor: tango.DeviceProxy) -> None:
    c = conductor
    c.Prepare("")
    assert c.State() == tango.DevState.STANDBY
    c.Close()
    assert c.run_state == "IDLE" and c.State() == tango.DevState.ON
    assert set(json.loads(c.device_states).values()) == {"IDLE"}
    c.Prepare("")
    run_to_end(c)
    assert c.run_state == "DONE"


@pytest.mark.parametrize("field", ["filename_suffix", "filename_prefix", "base_path"])
def test_characters_that_cannot_be_in_a_path_are_refused(
    conductor: tango.DeviceProxy, data_dir: Path, field: str
) -> None:
    value = {"filename_suffix": ".h5\u0000", "filename_prefix": "scan\u0000", "base_path": f"{data_dir}\u0000"}[field]
    with pytest.raises(tango.DevFailed) as info:
        conductor.Prepare(saving(data_dir, **{field: value}))
    assert reason(info) == "PARAM_ERROR" and field in info.value.args[0].desc
    assert conductor.run_state == "IDLE" and conductor.State() == tango.DevState.ON
    assert field in conductor.last_error  # a refused Prepare leaves a trace


def test_the_newest_frame_is_always_reachable(conductor: tango.DeviceProxy) -> None:
    c = conductor
    c.acq_nb_frames = 0
    c.acq_expo_time = 0.001
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.nb_frames_processed > 50, 10, "frames flowing")
    try:
        for _ in range(30):
            frame, idx = decode_frame(c.GetFrame([[-1], ["frame"]]))
            assert stamped_index(frame[0]) == idx
            assert json.loads(c.Lookup(-1))["frame_idx"] >= idx
    finally:
        c.Stop()
    wait_for(lambda: c.run_state == "STOPPED", 10, "stopped")
    c.acq_nb_frames = 600
    c.Prepare("")
    run_to_end(c)
    wait_for(lambda: c.last_image_ready == 599, 5, "last_image at the last frame")


def test_a_failed_run_keeps_every_saved_frame(conductor: tango.DeviceProxy, data_dir: Path) -> None:
    tango.DeviceProxy(receiver_name(1)).sim_fail_at_frame = 39
    c = conductor
    c.acq_nb_frames = 200
    c.acq_expo_time = 0.002
    c.Prepare(saving(data_dir, per_file=10))
    c.Start()
    wait_for(lambda: c.run_state == "FAULT", 10, "run FAULT")
    # the end-of-fault work: the healthy receiver drains, then the master file is written
    wait_for(
        lambda: json.loads(c.GetInfo())["timings"].get("master_file_frames") is not None,
        15,
        "the master file of the failed run",
    )
    master = json.loads(c.master_files)["frame"][0]
    assert os.path.exists(master)
    per = json.loads(c.progress_counters)["nb_frames_saved"]["per_receiver"]
    s0, s1 = per[receiver_name(0)], per[receiver_name(1)]
    # every frame saved, up to the last one; those no receiver saved listed as missing
    expected = max(2 * s0 - 1, 2 * s1)
    saved = set(range(0, 2 * s0, 2)) | set(range(1, 2 * s1 + 1, 2))

    def master_frames() -> int:
        with h5py.File(master) as f:
            return int(f["entry_0000/instrument/detector/data"].shape[0])

    assert master_frames() == expected, (per, c.GetInfo())
    assert min(2 * s0, 2 * s1 + 1) >= 38  # receiver 1 saved its frames before 39
    with h5py.File(master) as f:
        data = f["entry_0000/instrument/detector/data"]
        stamps = [stamped_index(x) for x in data[:, :1, :]]
        missing = f["entry_0000/conductor/missing_frames"][()].tolist()
    assert missing == sorted(set(range(expected)) - saved)
    assert all(stamps[i] == i for i in saved)
    c.Reset()
    c.acq_nb_frames = 10
    c.Prepare("")
    run_to_end(c)
    assert c.run_state == "DONE"


def test_progress_reads_always_return_a_value(conductor: tango.DeviceProxy) -> None:
    """Eight clients read progress for 5 s of a 1 ms run while the monitor pushes events."""
    c = conductor
    c.acq_nb_frames = 0
    c.acq_expo_time = 0.001
    c.Prepare("")
    c.Start()
    failures: list[str] = []
    reads = [0]
    names = ("nb_frames_ready", "nb_frames_processed", "nb_frames_xferred", "run_state", "State")
    deadline = time.monotonic() + 5

    def reader() -> None:
        proxy = tango.DeviceProxy(CONDUCTOR)
        while time.monotonic() < deadline:
            for name in names:
                try:
                    assert proxy.read_attribute(name).value is not None
                    reads[0] += 1
                except (tango.DevFailed, AssertionError) as exc:
                    failures.append(f"{name}: {exc!r}")

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    c.Stop()
    assert not failures[:3] and reads[0] > 100
    history = c.attribute_history("nb_frames_ready", 3)  # reads come from Tango's polling buffer
    assert len(history) == 3 and history[-1].value > 0


def test_a_saved_frame_whose_file_is_gone_or_broken(conductor: tango.DeviceProxy, data_dir: Path) -> None:
    c = conductor
    c.acq_nb_frames = 40
    params = json.loads(saving(data_dir, per_file=20))
    params["processing"]["fifo"] = {"nb_fifo_frames": 4}  # receivers keep their last 4 frames only
    c.Prepare(json.dumps(params))
    run_to_end(c)
    frame, idx = decode_frame(c.GetFrame([[2], ["frame"]]))  # long out of the receiver's buffer: from its file
    assert idx == 2 and stamped_index(frame[0]) == 2
    where = json.loads(c.Lookup(2))["hdf5"]["file"]
    Path(where).write_bytes(b"not an HDF5 file")
    with pytest.raises(tango.DevFailed) as info:
        c.GetFrame([[2], ["frame"]])
    assert reason(info) == "SAVING_ERROR" and where in info.value.args[0].desc
    os.unlink(where)
    with pytest.raises(tango.DevFailed) as info:
        c.GetFrame([[2], ["frame"]])
    assert reason(info) == "NOT_FOUND" and where in info.value.args[0].desc


def test_init_during_a_run_adopts_it(conductor: tango.DeviceProxy) -> None:
    c = conductor
    c.acq_nb_frames = 0
    uid = c.Prepare("")
    c.Start()
    c.Init()
    wait_for(lambda: c.run_state == "RUNNING", 10, "the run adopted after Init")
    assert c.acq_uuid == uid
    c.Stop()
    wait_for(lambda: c.run_state == "STOPPED", 10, "stopped")
    assert set(json.loads(c.device_states).values()) <= {"IDLE", "STOPPED"}


def test_start_failure_and_hung_device(conductor: tango.DeviceProxy) -> None:
    c = conductor
    tango.DeviceProxy(CONTROL).sim_fail_start = True
    c.Prepare("")
    with pytest.raises(tango.DevFailed) as info:
        c.Start()
    assert reason(info) == "DEVICE_ERROR" and CONTROL in info.value.args[0].desc
    assert c.run_state == "FAULT" and c.State() == tango.DevState.FAULT
    c.Reset()
    tango.DeviceProxy(receiver_name(0)).sim_hang = 4.0  # longer than the conductor's 3 s deadline
    patient = tango.DeviceProxy(CONDUCTOR)
    patient.set_timeout_millis(15_000)  # the conductor's own deadline is the one that answers
    with pytest.raises(tango.DevFailed) as info:
        patient.Prepare("")
    assert reason(info) in ("DEVICE_TIMEOUT", "DEVICE_OFFLINE")
    assert receiver_name(0) in info.value.args[0].desc
    assert c.State() in (tango.DevState.ON, tango.DevState.DISABLE)  # answered while the receiver hangs
    wait_for(lambda: json.loads(c.device_states)[receiver_name(0)] != "OFFLINE", 15, "the receiver back")
    c.Reset()
    c.Prepare("")
    run_to_end(c)
    assert c.run_state == "DONE"


def test_processing_that_never_finishes_ends_by_the_watchdog(conductor: tango.DeviceProxy) -> None:
    db = tango.Database()
    db.put_device_property(CONDUCTOR, {"watchdog_s": ["1.5"]})
    c = conductor
    try:
        c.Init()
        wait_for(lambda: c.State() == tango.DevState.ON, 10, "re-initialised")
        tango.DeviceProxy(receiver_name(1)).sim_drop_finished_event = True
        c.Prepare("")
        c.Start()
        wait_for(lambda: c.run_state == "FAULT", 15, "watchdog")
        assert "watchdog" in c.last_error
    finally:
        db.delete_device_property(CONDUCTOR, "watchdog_s")
        c.Init()
        wait_for(lambda: c.State() in (tango.DevState.ON, tango.DevState.FAULT), 10, "re-initialised")
    c.Reset()


def test_software_trigger_through_the_conductor(conductor: tango.DeviceProxy) -> None:
    c = conductor
    c.acq_nb_frames = 5
    c.acq_trigger_mode = 1  # SOFTWARE (the fixture sets internal again)
    c.Prepare("")
    c.Start()
    for k in range(5):
        c.Trigger()
        wait_for(lambda k=k: c.nb_frames_acquired == k + 1, 5, f"frame {k}")
    wait_for(lambda: c.run_state == "DONE", 10, "end of run")
    assert c.nb_frames_processed == 5


def test_info_and_schema(conductor: tango.DeviceProxy) -> None:
    c = conductor
    schema = json.loads(c.ParamsSchema())
    assert set(schema) == {"control", "receiver", "processing", "masterfile_metadata"}
    defaults = json.loads(c.DefaultParams())
    assert defaults["control"]["acq"]["nb_frames"] == c.acq_nb_frames
    c.Prepare("")
    run_to_end(c)
    info = json.loads(c.GetInfo())
    assert info["run_state"] == "DONE" and info["receivers"] == [receiver_name(0), receiver_name(1)]
    assert info["started_at"][:4].isdigit() and "T" in info["started_at"]  # a wall-clock time


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root: not root here")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full(conductor: tango.DeviceProxy, small_disk: Path, data_dir: Path) -> None:
    c = conductor
    c.acq_nb_frames = 100  # 512x512x2 bytes a frame: the 3 MB disk is full after a few frames
    c.Prepare(saving(small_disk, per_file=5))
    c.Start()
    wait_for(lambda: c.run_state in ("FAULT", "DONE"), 20, "end of run")
    assert c.run_state == "FAULT" and c.State() == tango.DevState.FAULT
    assert any(w in " ".join(c.errors).lower() for w in ("space", "full", "saving", "error"))
    wait_for(
        lambda: "master_file_frames" in json.loads(c.GetInfo())["timings"] or "master file" in " ".join(c.errors),
        15,
        "the end-of-fault master file written or refused",
    )
    assert not list(small_disk.glob("*.tmp"))  # no half-written master file
    c.Reset()  # the simulators work normally afterwards
    c.Prepare(saving(data_dir))
    run_to_end(c)
    assert c.run_state == "DONE"
    with h5py.File(json.loads(c.master_files)["frame"][0]) as f:
        assert f["entry_0000/instrument/detector/data"].shape[0] == 100
    c.Prepare(saving(data_dir, file_exists_policy="overwrite"))
    run_to_end(c)
    assert c.run_state == "DONE"


def test_a_full_disk_leaves_readable_files_and_servers_that_exit_cleanly(small_disk: Path, tmp_path: Path) -> None:
    """A write that HDF5 itself finds the disk full for leaves objects that crash the
    process when freed: the receivers stop before that write, close their files, and
    their servers still exit normally."""
    from lima2_conductor.cli.launcher import Layout, running_db

    layout = Layout(2, "id08", sensor=(256, 256))
    with running_db([layout], tmp_path / "system") as system:
        system.start_simulators(layout)
        system.start_conductor(layout)
        c = tango.DeviceProxy(f"tango://{system.tango_host}/{layout.conductor}")
        wait_for(lambda: c.State() == tango.DevState.ON, 20, "conductor")
        c.acq_nb_frames = 200  # 128 kB a frame: the 3 MB disk is full after about 20
        c.Prepare(saving(small_disk, per_file=4))
        c.Start()
        wait_for(lambda: c.run_state in ("FAULT", "DONE"), 30, "end of run")
        assert c.run_state == "FAULT"
        assert "space" in " ".join(c.errors).lower()

        seen: dict[str, object] = {}

        def files_hold_every_saved_frame() -> bool:
            """Once the receivers have closed their files (the healthy one drains first)."""
            saved = 0
            seen.clear()
            try:
                for path in sorted(small_disk.glob("lima2_*_*.h5")):  # the receivers' files, not the master
                    with h5py.File(path, "r", locking=False) as f:
                        seen[path.name] = n = f["entry_0000/instrument/detector/data"].shape[0]
                        saved += n
            except (OSError, KeyError) as exc:
                seen["error"] = repr(exc)
                return False  # a file still open for writing
            seen["counted"] = counted = c.nb_frames_saved
            return saved > 0 and saved == counted

        try:
            wait_for(files_hold_every_saved_frame, 15, "readable files holding every frame counted saved")
        except TimeoutError:
            raise AssertionError(f"files and count disagree: {seen}; conductor errors: {list(c.errors)}") from None
        system.processes.pop(layout.conductor_instance).stop()
        codes, logs = {}, {}
        for i in range(layout.nb_receivers):
            proc = system.processes.pop(layout.receiver_instance(i))
            proc.stop()
            codes[proc.name], logs[proc.name] = proc.popen.returncode, proc.log.read_text()
        assert all(code == 0 for code in codes.values()), codes  # a crash at exit is -11
        assert not any("without freeing" in text for text in logs.values())  # files closed cleanly


def test_tango_database_down(tmp_path: Path) -> None:
    """A database of its own: stopping it would disturb every other test."""
    from lima2_conductor.cli.launcher import Layout, running_db

    layout = Layout(2, "id09", sensor=(64, 64))
    with running_db([layout], tmp_path) as system:
        system.start_simulators(layout)
        system.start_conductor(layout)
        c = tango.DeviceProxy(f"tango://{system.tango_host}/{layout.conductor}")
        wait_for(lambda: c.State() == tango.DevState.ON, 20, "conductor")
        c.acq_nb_frames = 0
        c.Prepare("")
        c.Start()
        db = system.processes.pop("tango_db")
        db.stop()
        n = c.nb_frames_xferred
        wait_for(lambda: c.nb_frames_xferred > n + 10, 10, "a running acquisition unaffected")
        c.Stop()
        wait_for(lambda: c.run_state == "STOPPED", 10, "stopped")
        with pytest.raises(tango.DevFailed) as info:
            c.Prepare("")
        assert reason(info) == "DEVICE_OFFLINE" and system.tango_host.split(":")[-1] in info.value.args[0].desc
        assert c.State() in (tango.DevState.ON, tango.DevState.DISABLE)
        system.start_db()
        wait_for(lambda: _prepares(c), 30, "Prepare once the database is back (Tango reconnects within seconds)")
        run_to_end(c)
        assert c.run_state == "DONE"


def test_a_hung_tango_database(tmp_path: Path) -> None:
    """A database that takes connections and never answers (a stopped DataBaseds, a locked
    MariaDB): the conductor keeps answering, refuses what needs the database by its own
    deadline, and works again once the database does."""
    from lima2_conductor.cli.launcher import Layout, running_db

    layout = Layout(2, "id10", sensor=(64, 64))
    with running_db([layout], tmp_path) as system:
        system.start_simulators(layout)
        system.start_conductor(layout)
        name = f"tango://{system.tango_host}/{layout.conductor}"
        c = tango.DeviceProxy(name)
        wait_for(lambda: c.State() == tango.DevState.ON, 20, "conductor")
        watcher = tango.DeviceProxy(name)
        watcher.set_timeout_millis(1000)
        patient = tango.DeviceProxy(name)
        patient.set_timeout_millis(30_000)  # the conductor's own deadline is the one that answers
        c.acq_nb_frames = 0
        c.Prepare("")
        c.Start()
        db = system.processes["tango_db"].pid
        answers: list[tuple[float, bool]] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                t0 = time.monotonic()
                try:
                    watcher.State()
                    answers.append((time.monotonic() - t0, True))
                except tango.DevFailed:
                    answers.append((time.monotonic() - t0, False))
                done.wait(0.1)

        os.kill(db, signal.SIGSTOP)
        thread = threading.Thread(target=watch, daemon=True)
        try:
            thread.start()
            n = c.nb_frames_xferred
            wait_for(lambda: c.nb_frames_xferred > n + 10, 10, "a running acquisition unaffected")
            c.Stop()
            wait_for(lambda: c.run_state == "STOPPED", 10, "stopped")
            for _ in range(2):
                t0 = time.monotonic()
                with pytest.raises(tango.DevFailed) as info:
                    patient.Prepare("")
                assert reason(info) == "DEVICE_OFFLINE" and system.tango_host.split(":")[-1] in info.value.args[0].desc
                assert time.monotonic() - t0 < 10
            with pytest.raises(tango.DevFailed) as info:
                patient.acq_nb_frames = 5  # memorized: the database must take it first
            assert reason(info) == "DEVICE_OFFLINE"
            assert c.acq_nb_frames == 0
        finally:
            done.set()
            thread.join(5) if thread.is_alive() else None
            os.kill(db, signal.SIGCONT)
        assert answers and all(ok for _, ok in answers), f"State unanswered {sum(not ok for _, ok in answers)} times"
        wait_for(lambda: _prepares(c), 60, "Prepare once the database answers again")
        run_to_end(c)
        assert c.run_state == "DONE"


def _prepares(c: tango.DeviceProxy) -> bool:
    try:
        c.acq_nb_frames = 10  # memorized: written to the database too
        c.Prepare("")
        return True
    except tango.DevFailed:
        return False


__all__ = ["LocalSystem", "np"]
