"""A saving run with ROI statistics across hosts: control, two receivers, the database,
the conductor and the client each on a host of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from lima2_conductor.simulator.frames import FrameGenerator, stamped_index
from lima2_conductor.simulator.reduction import Reducer
from tests.hosts.cluster import HostSystem
from tests.hosts.conftest import LAYOUT, HostsFactory

RECT = {"topleft": {"x": 20, "y": 30}, "dimensions": {"x": 50, "y": 40}}
STATS = {"statistics": {"enabled": True, "rect_rois": [RECT], "arc_rois": []}}


@pytest.fixture(scope="module")
def hosts(make_hosts: HostsFactory) -> Iterator[HostSystem]:
    yield make_hosts()


def saving_params(data_dir: Path, nb: int, expo_s: float, per_file: int = 10) -> str:
    return json.dumps(
        {
            "control": {"acq": {"nb_frames": nb, "expo_time": int(expo_s * 1e6), "latency_time": 0}},
            "processing": {
                "saving": {
                    "enabled": True,
                    "base_path": str(data_dir),
                    "nb_frames_per_file": per_file,
                    "filename_prefix": "run",
                },
                **STATS,
            },
        }
    )


def test_saving_run_across_hosts(hosts: HostSystem, data_dir: Path) -> None:
    hosts.reset()
    c, cond, nb = hosts.client, hosts.conductor, 60
    assert c is not None
    for attr in ("nb_frames_xferred", "State"):
        c(f"subscribe({cond!r}, {attr!r})")
    c("clear_events()")
    hosts.c(f"c.Prepare({saving_params(data_dir, nb, 0.01)!r})")
    hosts.c("c.Start()")
    assert hosts.wait_run_end() == "DONE", hosts.c("c.Status()")

    # the master file maps every frame, in order
    master, dataset = json.loads(hosts.c("c.master_files"))["frame"]
    with h5py.File(master) as f:
        stack = f[dataset][()]
    assert stack.shape == (nb, *reversed(LAYOUT.sensor))
    assert [stamped_index(frame) for frame in stack] == list(range(nb))

    # reduced data in global order, equal to the statistics of each frame
    acq = json.loads(hosts.c("c.DefaultParams()"))["control"]
    gen = FrameGenerator(acq, *LAYOUT.sensor)
    red = Reducer.from_params({**STATS, "profiles": {"enabled": False}}, *LAYOUT.sensor)
    expected = red.statistics(gen.frames(np.arange(nb)), np.arange(nb), 0).reshape(nb, 1)
    rows = c(f"reduced({cond!r}, 0)")
    assert rows["frame_idx"] == list(range(nb))
    np.testing.assert_allclose(rows["avg"], expected[:, 0]["avg"], rtol=1e-6)

    # frames through the conductor, by index and the newest
    for i in (0, 1, nb // 2, nb - 1):
        got = c(f"get_frame({cond!r}, {i})")
        assert (got["idx"], got["stamp"]) == (i, i)
    newest = c(f"get_frame({cond!r}, -1)")
    assert (newest["idx"], newest["stamp"]) == (nb - 1, nb - 1)

    # change events reached the client on its own host
    xferred = [v for _, v in c(f"events({cond!r}, 'nb_frames_xferred')")]
    assert xferred and xferred[-1] == nb and len(xferred) > 2
    states = [v for _, v in c(f"events({cond!r}, 'State')")]
    assert "RUNNING" in states and states[-1] == "ON"
