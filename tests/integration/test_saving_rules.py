"""Saving rules seen from a client: names refused at Prepare before any device is touched,
``append`` refused with its reason, a master file never written over a file that appeared
during the run; GetFrame's source checked; the database down before any Prepare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tango

from lima2_conductor.cli.launcher import CONTROL, wait_for
from tests.integration.conftest import reason, run_to_end


def saving(data_dir: Path | str, **kw: object) -> str:
    return json.dumps({"processing": {"saving": {"enabled": True, "base_path": str(data_dir), **kw}}})


@pytest.mark.parametrize(
    "fields, field, rule",
    [
        ({"filename_format": "same{filename_suffix}"}, "filename_format", "would both be"),
        (
            {"filename_format": "{filename_prefix}_{filename_rank}{filename_suffix}", "nb_frames_per_file": 2},
            "filename_format",
            "would both be",
        ),
        (
            {"filename_format": "../esc_{filename_prefix}_{filename_rank}_{file_number:05d}{filename_suffix}"},
            "filename_format",
            "path separator",
        ),
        ({"filename_format": "/tmp/x_{filename_rank}_{file_number}.h5"}, "filename_format", "absolute path"),
        ({"filename_prefix": "p" * 250}, "filename_prefix", "more than the 255 bytes"),
        ({"filename_prefix": "p" * 300}, "filename_prefix", "more than the 255 bytes"),
        ({"base_path": "s2/ok"}, "base_path", "must be an absolute path"),
        ({"file_exists_policy": "append"}, "file_exists_policy", "'append' is not supported"),
    ],
)
def test_names_that_would_lose_frames_or_escape_are_refused_before_any_device_call(
    conductor: tango.DeviceProxy, data_dir: Path, fields: dict[str, object], field: str, rule: str
) -> None:
    c = conductor
    c.acq_nb_frames = 6
    fields = dict(fields)
    control = tango.DeviceProxy(CONTROL)
    control.sim_fail_prepare = True  # a device called would fail otherwise: DEVICE_ERROR
    try:
        with pytest.raises(tango.DevFailed) as info:
            c.Prepare(saving(fields.pop("base_path", data_dir), **fields))
    finally:
        control.sim_fail_prepare = False
    assert reason(info) == "PARAM_ERROR"
    assert f"$.saving.{field}" in info.value.args[0].desc and rule in info.value.args[0].desc
    assert c.run_state == "IDLE" and c.State() == tango.DevState.ON
    assert list(data_dir.parent.iterdir()) == [data_dir] and not list(data_dir.iterdir())


def test_a_master_file_is_never_written_over_a_file_that_appeared(conductor: tango.DeviceProxy, data_dir: Path) -> None:
    c = conductor
    c.acq_nb_frames = 20
    c.Prepare(saving(data_dir, filename_prefix="scan", nb_frames_per_file=5))
    theirs = data_dir / "scan_master.h5"
    theirs.write_bytes(b"someone else's file")  # after the Prepare checked the path
    run_to_end(c)
    assert c.run_state == "FAULT"
    assert theirs.read_bytes() == b"someone else's file"
    errors = " ".join(c.errors)
    assert "SAVING_ERROR" in errors and str(theirs) in errors
    assert not list(data_dir.glob("*.tmp"))
    assert len(list(data_dir.glob("scan_*_*.h5"))) == 4  # the frames are in their files
    theirs.unlink()  # the next run works
    c.Reset()
    c.Prepare(saving(data_dir, filename_prefix="scan2", nb_frames_per_file=5))
    run_to_end(c)
    assert c.run_state == "DONE" and (data_dir / "scan2_master.h5").exists()


@pytest.mark.parametrize("sources", [["frame", "bogus"], [], ["bogus"], [""]])
def test_get_frame_sources_must_be_one_known_source(conductor: tango.DeviceProxy, sources: list[str]) -> None:
    c = conductor
    c.Prepare("")
    run_to_end(c)
    with pytest.raises(tango.DevFailed) as info:
        c.GetFrame([[0], sources])
    assert reason(info) == "PARAM_ERROR"
    assert "frame, input_frame" in info.value.args[0].desc
    c.GetFrame([[0], ["frame"]])
    c.GetFrame([[0], ["input_frame:dense"]])


def test_tango_database_down_before_any_prepare(tmp_path: Path) -> None:
    """A database of its own: stopping it would disturb every other test. The conductor
    has never prepared: the schemas it reads from the database are not cached yet."""
    from lima2_conductor.cli.launcher import Layout, running_db

    layout = Layout(1, "id19", sensor=(64, 64))
    with running_db([layout], tmp_path) as system:
        system.start_simulators(layout)
        system.start_conductor(layout)
        c = tango.DeviceProxy(f"tango://{system.tango_host}/{layout.conductor}")
        wait_for(lambda: c.State() == tango.DevState.ON, 20, "conductor")
        system.processes.pop("tango_db").stop()
        with pytest.raises(tango.DevFailed) as info:
            c.Prepare("")
        assert reason(info) == "DEVICE_OFFLINE", info.value.args[0].desc
        assert f"database ({system.tango_host})" in info.value.args[0].desc
        assert layout.control not in info.value.args[0].desc
        assert c.State() in (tango.DevState.ON, tango.DevState.DISABLE)
