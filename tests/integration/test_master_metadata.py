"""Prepare's ``masterfile_metadata``: what a client (Bliss's ``det.masterfile_metadata``)
puts under the master file's detector group, and metadata HDF5 cannot hold refused at
Prepare, before any device is called."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import pytest
import tango

from lima2_conductor.cli.launcher import CONTROL
from tests.integration.conftest import reason, run_to_end

DETECTOR = "entry_0000/instrument/detector"


def prepare_params(data_dir: Path, metadata: Any) -> str:
    saving = {"enabled": True, "base_path": str(data_dir), "filename_prefix": "meta"}
    return json.dumps({"processing": {"saving": saving}, "masterfile_metadata": metadata})


def test_user_metadata_goes_under_the_detector_group(conductor: tango.DeviceProxy, data_dir: Path) -> None:
    c = conductor
    c.acq_nb_frames = 4
    user = {
        "detector_information": {"model": "user model", "serial": 42, "modes": ["a", "bc"]},
        "sample": {"name": "lysozyme", "temperature": 100.5, "flags": [True, False], "note": None},
        "tags": ["x", "y"],
    }
    c.Prepare(prepare_params(data_dir, user))
    run_to_end(c)
    assert c.run_state == "DONE", c.Status()
    with h5py.File(data_dir / "meta_master.h5") as f:
        det = f[DETECTOR]
        info = det["detector_information"]
        assert set(info) == {"model", "serial", "modes"}  # the user's replaces the conductor's
        assert info["model"][()] == b"user model" and info["serial"][()] == 42
        assert [v.decode() for v in info["modes"][()]] == ["a", "bc"]
        assert det["sample/name"][()] == b"lysozyme" and det["sample/temperature"][()] == 100.5
        assert list(det["sample/flags"][()]) == [True, False] and det["sample/note"][()] == b"None"
        assert [v.decode() for v in det["tags"][()]] == ["x", "y"]
        assert det["params/acquisition/acq/nb_frames"][()] == 4  # the conductor's params stay
        assert det["plot/data"].shape[0] == 4


def test_without_user_metadata_the_conductor_writes_det_info(conductor: tango.DeviceProxy, data_dir: Path) -> None:
    c = conductor
    c.acq_nb_frames = 2
    c.Prepare(prepare_params(data_dir, {}))
    run_to_end(c)
    det_info = json.loads(tango.DeviceProxy(CONTROL).det_info)
    with h5py.File(data_dir / "meta_master.h5") as f:
        info = f[f"{DETECTOR}/detector_information"]
        assert set(info) == set(det_info)


@pytest.mark.parametrize(
    "metadata, says",
    [
        ([1, 2], "must be an object"),
        ({"a/b": 1}, "is not an HDF5 name"),
        ({"group": {"": 1}}, "is not an HDF5 name"),
        ({"plot": 1}, "writes 'plot' itself"),
        ({"big": 2**70}, "HDF5 cannot hold"),
    ],
)
def test_metadata_hdf5_cannot_hold_is_refused_at_prepare(
    conductor: tango.DeviceProxy, data_dir: Path, metadata: Any, says: str
) -> None:
    c = conductor
    control = tango.DeviceProxy(CONTROL)
    control.sim_fail_prepare = True  # a device called would fail otherwise: DEVICE_ERROR
    try:
        with pytest.raises(tango.DevFailed) as info:
            c.Prepare(prepare_params(data_dir, metadata))
    finally:
        control.sim_fail_prepare = False
    assert reason(info) == "PARAM_ERROR"
    assert "$.masterfile_metadata" in info.value.args[0].desc and says in info.value.args[0].desc
    assert c.run_state == "IDLE" and c.State() == tango.DevState.ON
    assert not list(data_dir.iterdir())


def test_params_schema_names_the_metadata(conductor: tango.DeviceProxy) -> None:
    assert json.loads(conductor.ParamsSchema())["masterfile_metadata"]["type"] == "object"
