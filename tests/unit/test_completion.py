"""Failed runs' master files: every saved frame mapped, gaps listed, and completed once the
receivers that could not be read answer again (the core on fakes)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lima2_conductor.core.lima2 import DeviceState as D
from lima2_conductor.core.master_file import gapped_layout
from lima2_conductor.core.state import RunState
from lima2_conductor.core.topology import FrameTable, StaticLocator
from tests.fakes import FakeSystem, poll_until


def name(rank: int, k: int) -> str:
    return f"r{rank}_{k}"


def test_static_layout_maps_every_saved_frame_and_lists_the_gaps() -> None:
    total, mappings, missing = gapped_layout(StaticLocator((0, 1)), [3, 5], 2, name)
    assert total == 10  # receiver 1's last frame is global frame 1 + 2 * 4
    assert missing == [6, 8]  # receiver 0 saved 0, 2, 4 only
    got = {(m.file, m.start, m.step, m.count) for m in mappings}
    assert got == {("r0_0", 0, 2, 2), ("r0_1", 4, 2, 1), ("r1_0", 1, 2, 2), ("r1_1", 5, 2, 2), ("r1_2", 9, 2, 1)}


def test_static_layout_without_gaps_is_the_prefix() -> None:
    loc = StaticLocator((1, 0))
    total, mappings, missing = gapped_layout(loc, [4, 4], 3, name)
    assert (total, missing) == (8, [])
    assert [(m.file, m.start, m.count) for m in mappings] == [
        (m.file, m.start, m.count) for m in loc.file_mappings([4, 4], 3, name)[1]
    ]


def test_frame_table_layout() -> None:
    table = FrameTable(2)
    table.learn(0, [0, 1, 4, 5])
    table.learn(1, [2, 3, 6])
    total, mappings, missing = gapped_layout(table, [4, 1], 2, name)  # receiver 1 saved frame 2 only
    assert (total, missing) == (6, [3])
    mapped = sorted(int(i) for m in mappings for i in (m.indices if m.indices is not None else []))
    assert mapped == [0, 1, 2, 4, 5]


def frames_in(master: str) -> tuple[int, list[int]]:
    with h5py.File(master, "r") as f:
        key = "entry_0000/conductor/missing_frames"
        return int(f["entry_0000/conductor/nb_frames"][()]), f[key][()].tolist() if key in f else []


async def _until(condition: Any, what: str, timeout: float = 5.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < end, what
        await asyncio.sleep(0.005)


def test_partitioned_receiver_gets_its_master_file_completed_even_after_a_new_run(tmp_path: Path) -> None:
    """A receiver cut off mid-run: the master file maps what was saved (gaps listed); once
    its processing device answers again, the failed run's master file is rewritten with
    everything it saved, though another run has been prepared and started meanwhile."""

    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        s.completions.period_s = 0.01
        first = tmp_path / "first"
        first.mkdir()
        saving = {"processing": {"saving": {"enabled": True, "base_path": str(first), "nb_frames_per_file": 4}}}
        await s.prepare(saving)
        await s.start()
        for p in f.procs:
            p.processed = p.saved = 3
        await s.poll()
        f.rcvs[1].offline = True  # the partition: neither it nor its processing device answers
        f.procs[1].hung = True
        while s.run_state != RunState.FAULT:
            await s.poll()
        assert "rcv1 is offline" in s.last_error
        f.procs[0].processed = f.procs[0].saved = 4  # its last frame, then the Stop
        f.procs[0].finished = True
        run = s.run
        assert run is not None
        await poll_until(s, lambda: run.master_file, 10)
        assert frames_in(run.master_file) == (7, [])  # 0..6 (receiver 1 counted 3 before the cut)
        record = s.completions.records[-1]
        assert record.state == "waiting" and record.info()["waiting_for"] == ["rcv1"]
        assert s.completions.pending(run.uuid)

        # the receiver is back, its old pipeline still busy; a new run is prepared and started
        f.rcvs[1].offline = False
        f.rcvs[1].state = D.IDLE
        await s.reset()
        second = tmp_path / "second"
        second.mkdir()
        await s.prepare({"processing": {"saving": {"enabled": True, "base_path": str(second)}}})
        await s.start()
        assert s.run is not run and record.state == "waiting"
        erase = s._erase_task
        await _until(lambda: erase is None or erase.done(), "the clean-up after Prepare")
        assert run.uuid in f.rcvs[1].held  # a completion still reads that pipeline: kept

        # the old pipeline answers: it saved all its 10 frames while cut off
        f.procs[1].hung = False
        f.procs[1].saved, f.procs[1].finished = 10, True
        await _until(lambda: record.state == "completed", "completion")
        total, missing = frames_in(run.master_file)
        assert total == 20 and missing == [8, 10, 12, 14, 16, 18]  # receiver 0 stopped at 4
        assert record.info()["missing"] == missing and record.frames_before == 7
        assert any("master file completed" in line for line in s.history)
        assert not s.completions.pending(run.uuid)
        assert not list(first.glob("*.tmp"))  # written under a temporary name, then renamed

    asyncio.run(scenario())


def test_a_receiver_that_never_comes_back_leaves_the_master_file_as_it_was(tmp_path: Path) -> None:
    async def scenario() -> None:
        f = FakeSystem()
        s = f.system
        s.completions.period_s = 0.01
        await s.prepare({"processing": {"saving": {"enabled": True, "base_path": str(tmp_path)}}})
        await s.start()
        for p in f.procs:
            p.processed = p.saved = 2
        await s.poll()
        f.rcvs[0].offline = True
        f.procs[0].hung = True
        f.procs[1].processed, f.procs[1].saved, f.procs[1].finished = 5, 5, True
        run = s.run
        assert run is not None
        await poll_until(s, lambda: run.master_file, 20)
        before = Path(run.master_file).stat().st_mtime_ns
        assert frames_in(run.master_file) == (10, [4, 6, 8])
        record = s.completions.records[-1]
        await asyncio.sleep(0.1)  # several completion periods: nothing answers
        assert record.state == "waiting" and Path(run.master_file).stat().st_mtime_ns == before
        s.release()  # Init: given up, the master file stays with its missing frames listed
        assert record.state == "abandoned" and record.info()["missing"] == [4, 6, 8]
        assert np.array_equal(frames_in(run.master_file)[1], [4, 6, 8])

    asyncio.run(scenario())
