"""Pipeline figures: master file writing, reduced-data merge, GetFrame latency.

- master file for 1 M frames over 4 receivers and 1,000 files (strided hyperslabs),
  next to one mapping per frame (the official conductor's method) on 100 k frames
  (medians of five runs);
- reduced-data merge throughput (rows/s) into global frame order;
- ``GetFrame`` through the conductor next to ``getFrame`` on the processing device.

Run: ``python benchmarks/bench_pipeline.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

import h5py
import numpy as np

from lima2_conductor.core import master_dense, master_file
from lima2_conductor.core.reduced_data import STATS_DTYPE, ReducedSource, ReducedStore
from lima2_conductor.core.topology import RoundRobin

REPEAT = 5
"""Each file-writing figure is the median of this many runs (the first one also loads
HDF5's code and warms the file system)."""


def saving(base: str, per_file: int) -> master_file.Saving:
    return master_file.Saving.from_params(
        {
            "base_path": base,
            "filename_prefix": "bench",
            "filename_format": "{filename_prefix}_{filename_rank}_{file_number:05d}{filename_suffix}",
            "filename_suffix": ".h5",
            "start_number": 0,
            "nb_frames_per_file": per_file,
            "nx_entry_name": "entry_0000",
            "nx_instrument_name": "instrument",
            "nx_detector_name": "detector",
            "nb_dimensions": "dim_3d_or_4d",
            "file_exists_policy": "overwrite",
        }
    )


def bench_master(tmp: str) -> float:
    n_rcv, frames, per_file = 4, 1_000_000, 1000
    s = saving(tmp, per_file)
    topo = RoundRobin(tuple(range(n_rcv)))
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        total, mappings = master_file.layout(topo.new_run(frames), [frames // n_rcv] * n_rcv, s)
        master_dense.write(s.master_path, s, total, mappings, (1, 512, 512), np.dtype("<u2"), {"uuid": "bench"})
        times.append(time.perf_counter() - t0)
    ours = statistics.median(times)
    with h5py.File(s.master_path) as f:
        assert f[s.data_path].shape[0] == frames and len(f[s.data_path].virtual_sources()) == len(mappings) == 1000
    print(
        f"master file, 1 M frames, 4 receivers, 1,000 files: {ours * 1e3:7.1f} ms (target <= 200 ms)  {ours / frames * 1e9:6.1f} ns/frame"
    )

    small = 100_000
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        layout = h5py.VirtualLayout(shape=(small, 512, 512), dtype="<u2")
        for rank in range(n_rcv):
            local = small // n_rcv
            for k in range(local // per_file):
                index = rank + n_rcv * (k * per_file + np.arange(per_file))
                layout[index] = h5py.VirtualSource(s.file_name(rank, k), s.data_path, shape=(per_file, 512, 512))
        with h5py.File(os.path.join(tmp, "per_frame.h5"), "w") as f:
            f.create_virtual_dataset("data", layout)
        times.append(time.perf_counter() - t0)
    per_frame = statistics.median(times)
    ratio = (per_frame / small) / (ours / frames)
    print(
        f"one mapping per frame, 100 k frames: {per_frame * 1e3:7.1f} ms  {per_frame / small * 1e9:8.1f} ns/frame -> strided is {ratio:6.0f}x faster per frame (target 50x)"
    )
    return ours / frames


def bench_peer_master(tmp: str, ours_per_frame: float) -> None:
    """The lima2-client conductor's own layout code (index per frame), if installed."""
    try:
        from lima2.common.types import FrameInfo, FrameType
        from lima2.conductor.processing.master_file import build_layout, write_virtual_dataset
        from lima2.conductor.topology import LookupTable
    except ImportError:
        print("lima2-client not installed: peer master-file figure skipped")
        return
    import asyncio

    n_rcv, frames, per_file = 4, 100_000, 1000
    params = {
        "base_path": tmp,
        "filename_prefix": "peer",
        "nb_frames_per_file": per_file,
        "nx_entry_name": "entry_0000",
        "nx_instrument_name": "instrument",
        "nx_detector_name": "detector",
        "nb_dimensions": "dim_3d_or_4d",
    }

    async def peer() -> float:
        lut = LookupTable(size_hint=frames, num_receivers=n_rcv)
        g = np.arange(frames)
        lut.lut[:, 0] = g % n_rcv
        lut.lut[:, 1] = g // n_rcv
        lut.build_done.set()
        t0 = time.perf_counter()
        layout = await build_layout(
            num_receivers=n_rcv,
            lookup_table=lut,
            frame_info=FrameInfo(1, 512, 512, np.dtype("<u2")),
            frame_type=FrameType.DENSE,
            params=params,
        )  # type: ignore[arg-type]
        with h5py.File(os.path.join(tmp, "peer_master.h5"), "w") as f:
            write_virtual_dataset(f, "entry_0000", "instrument", "detector", FrameType.DENSE, layout)
        return time.perf_counter() - t0

    elapsed = asyncio.run(peer())
    print(
        f"lima2-client master file code, 100 k frames: {elapsed * 1e3:7.1f} ms  {elapsed / frames * 1e9:8.1f} ns/frame -> ours is {elapsed / frames / ours_per_frame:6.0f}x faster per frame"
    )


def bench_merge() -> None:
    n_rcv, frames, rois = 4, 250_000, 4
    source = ReducedSource("roi_stats", "popRoiStatistics", (1,) * rois)
    chunks = []
    for rank in range(n_rcv):
        gidx = np.arange(rank, frames, n_rcv)
        rows = np.zeros((len(gidx), rois), dtype=STATS_DTYPE)
        rows["frame_idx"] = gidx[:, None]
        rows["avg"] = gidx[:, None]
        chunks.append(np.array_split(rows.reshape(-1), 50))
    store = ReducedStore(source, size_hint=frames)
    t0 = time.perf_counter()
    for step in range(50):
        for rank in range(n_rcv):
            store.add(chunks[rank][step])
    elapsed = time.perf_counter() - t0
    assert store.ready == frames
    print(
        f"reduced-data merge: {frames * rois / elapsed / 1e6:6.1f} M rows/s ({frames * rois} rows, {n_rcv} receivers; target >= 1 M rows/s)"
    )


def bench_get_frame(tmp: str) -> None:
    import tango

    from lima2_conductor.cli.launcher import CONDUCTOR, local_system, wait_for

    with local_system(2, conductor=True, workdir=os.path.join(tmp, "sys")) as system:
        os.environ["TANGO_HOST"] = system.tango_host
        c = tango.DeviceProxy(CONDUCTOR)
        c.acq_nb_frames, c.acq_expo_time = 100, 0.001
        c.Prepare(json.dumps({"processing": {"fifo": {"nb_fifo_frames": 1000}}}))
        c.Start()
        wait_for(lambda: c.run_state == "DONE", 20, "end")
        where = json.loads(c.Lookup(57))
        proc = tango.DeviceProxy(where["processing_device"])
        ours, direct = [], []
        for _ in range(100):
            t0 = time.perf_counter()
            c.GetFrame([[57], ["frame"]])
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            proc.getFrame(57)
            direct.append(time.perf_counter() - t0)
        print(
            f"GetFrame 512x512 uint16: conductor median {statistics.median(ours) * 1e3:.2f} ms | direct getFrame {statistics.median(direct) * 1e3:.2f} ms"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours_per_frame = bench_master(tmp)
        bench_peer_master(tmp, ours_per_frame)
        bench_merge()
        bench_get_frame(tmp)


if __name__ == "__main__":
    main()
