"""The conductor and the simulators on a real Tango database (DataBaseds on MariaDB),
configured by ``lima2-tango-conductor register`` alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import tango

from lima2_conductor.cli.launcher import CONDUCTOR, Layout, wait_for
from lima2_conductor.core.devencoded import decode_rows
from lima2_conductor.core.lima2 import STATS_DTYPE

from .tango_services import SKIP, SKIP_REASON, RealTangoSystem

pytestmark = pytest.mark.skipif(SKIP, reason=SKIP_REASON)

LAYOUT = Layout()  # the names of tango_db/
ROI = {"topleft": {"x": 0, "y": 8}, "dimensions": {"x": 16, "y": 16}}


@pytest.fixture(scope="module")
def system(services: RealTangoSystem) -> Iterator[RealTangoSystem]:
    """tango_db/ registered, the simulators and the conductor running."""
    out = services.register()
    assert "[write] device Lima2Conductor/simulator id00/lima2conductor/simulator" in out
    with services.running(LAYOUT) as system:
        yield system


@pytest.fixture
def conductor(system: RealTangoSystem) -> tango.DeviceProxy:
    return system.idle_conductor(CONDUCTOR)


def run_to_end(c: tango.DeviceProxy, timeout: float = 60) -> None:
    c.Start()
    wait_for(lambda: c.run_state in ("DONE", "FAULT", "STOPPED"), timeout, "end of run")
    assert c.run_state == "DONE", c.Status()


def test_register_twice_writes_nothing(system: RealTangoSystem) -> None:
    out = system.register()
    assert "[write]" not in out and out.splitlines()[-1].startswith("0 write(s)")
    allowed = system.database().get_class_property("Lima2Conductor", ["AllowedAccessCmd"])["AllowedAccessCmd"]
    assert {"GetFrame", "Lookup", "GetInfo"} <= set(allowed)


def test_saving_run_with_roi_statistics(conductor: tango.DeviceProxy, tmp_path: Path) -> None:
    c, nb = conductor, 60
    c.acq_nb_frames = nb
    c.acq_expo_time = 0.002
    c.acq_latency_time = 0.0
    params = {
        "processing": {
            "saving": {"enabled": True, "base_path": str(tmp_path), "nb_frames_per_file": 20, "filename_prefix": "db"},
            "statistics": {"enabled": True, "rect_rois": [ROI]},
        }
    }
    c.Prepare(json.dumps(params))
    run_to_end(c)
    assert c.nb_frames_saved == nb
    master, dataset = json.loads(c.master_files)["frame"]
    assert master == str(tmp_path / "db_master.h5")
    with h5py.File(master) as f:
        assert f[dataset].shape == (nb, *reversed(LAYOUT.sensor))
        assert f["entry_0000/conductor/nb_frames"][()] == nb
    rows = decode_rows(c.GetReducedData([[0, 0, 0], ["roi_stats"]]), STATS_DTYPE)
    np.testing.assert_array_equal(rows["frame_idx"], np.arange(nb))


def test_memorized_settings_survive_a_conductor_restart(system: RealTangoSystem, conductor: tango.DeviceProxy) -> None:
    """DataBaseds stores memorized values (``__value``); NosqlTangoDB does not."""
    c = conductor
    c.acq_nb_frames = 37
    c.acq_expo_time = 0.003
    c.saving_prefix = "memorized"
    stored = system.database().get_device_attribute_property(CONDUCTOR, ["acq_nb_frames"])
    assert list(stored["acq_nb_frames"]["__value"]) == ["37"]
    system.processes.pop(LAYOUT.conductor_instance).stop()
    system.start_conductor(LAYOUT)
    c = system.proxy(CONDUCTOR)
    wait_for(lambda: c.State() != tango.DevState.INIT, 30, "conductor answering")
    assert c.acq_nb_frames == 37
    assert c.acq_expo_time == pytest.approx(0.003)
    assert c.saving_prefix == "memorized"


def test_databaseds_restart_mid_run(system: RealTangoSystem, conductor: tango.DeviceProxy) -> None:
    c = conductor
    c.acq_nb_frames = 400
    c.acq_expo_time = 0.005
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.nb_frames_xferred > 20, 30, "frames flowing")
    system.stop_db()
    assert c.running  # the run goes on without the database
    system.start_db()
    wait_for(lambda: c.run_state in ("DONE", "FAULT"), 60, "end of run")
    assert c.run_state == "DONE", c.Status()
    assert c.nb_frames_xferred == 400
    c.acq_nb_frames = 10
    c.Prepare("")
    run_to_end(c)
    assert c.nb_frames_xferred == 10
