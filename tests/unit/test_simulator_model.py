"""The simulators' pure model: frames, dispatch, clock, reduced data, encoding."""

from __future__ import annotations

import numpy as np
import pytest

from lima2_conductor.core.devencoded import (
    HEADER_SIZE,
    DecodeError,
    decode_frame,
    decode_rows,
    encode_frame,
    encode_rows,
)
from lima2_conductor.core.params import defaults_from_schema
from lima2_conductor.simulator.clock import FrameClock
from lima2_conductor.simulator.frames import FrameGenerator, geometry_from_params, receiver_of, share, stamped_index
from lima2_conductor.simulator.reduction import STATS_DTYPE, Reducer
from lima2_conductor.simulator.schemas import acq_params_schema, proc_params_schema


def params(**acq: object) -> dict:
    p = defaults_from_schema(acq_params_schema(64, 48))
    p["acq"].update(acq)
    return p


@pytest.mark.parametrize("pixel_type", ["gray8", "gray16", "gray32", "gray32f", "gray64f"])
def test_frames_stamp_global_index(pixel_type: str) -> None:
    p = params()
    p["det"]["generator"]["pixel_type"] = pixel_type
    gen = FrameGenerator(p, 64, 48)
    idx = np.array([0, 1, 255, 256, 70_000, 2**33 + 5])
    frames = gen.frames(idx)
    assert frames.shape == (6, 1, 48, 64)
    assert [stamped_index(f) for f in frames] == idx.tolist()


def test_frames_repeat_with_prefetch_period_outside_stamp() -> None:
    p = params()
    p["det"]["nb_prefetch_frames"] = 3
    p["det"]["generator"]["gauss"]["grow_factor"] = 0.5
    gen = FrameGenerator(p, 64, 48)
    f = gen.frames(np.arange(7))[:, :, 1:, :]
    np.testing.assert_array_equal(f[0], f[3])
    np.testing.assert_array_equal(f[1], f[4])
    assert not np.array_equal(f[0], f[1])


def test_geometry_roi_binning_and_bad_roi() -> None:
    p = params()
    p["img"]["roi"] = {"topleft": {"x": 8, "y": 4}, "dimensions": {"x": 32, "y": 20}}
    p["img"]["binning"] = {"x": 2, "y": 2}
    g = geometry_from_params(p, 64, 48)
    assert (g.width, g.height) == (16, 10)
    p["img"]["roi"]["dimensions"]["x"] = 60
    with pytest.raises(ValueError, match="img.roi"):
        geometry_from_params(p, 64, 48)


@pytest.mark.parametrize("mode", ["round_robin", "predictive_random"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_shares_partition_the_frames(mode: str, n: int) -> None:
    parts = [np.concatenate([share(r, n, mode, a, b) for a, b in ((0, 17), (17, 40), (40, 101))]) for r in range(n)]
    allidx = np.sort(np.concatenate(parts))
    np.testing.assert_array_equal(allidx, np.arange(101))
    for r, part in enumerate(parts):
        assert np.all(receiver_of(part, n, mode) == r)
        assert np.all(np.diff(part) > 0)
    if mode == "round_robin":
        np.testing.assert_array_equal(parts[n - 1][:3], [n - 1, 2 * n - 1, 3 * n - 1])


def test_clock_internal_and_software() -> None:
    now = [100.0]
    clock = FrameClock(params(nb_frames=10, expo_time=20_000, latency_time=5_000), now=lambda: now[0])
    assert clock.produced() == 0
    clock.start()
    now[0] += 0.11
    assert clock.produced() == 4
    now[0] += 10
    assert clock.produced() == 10 and clock.complete()
    soft = FrameClock(
        params(nb_frames=0, trigger_mode="software", nb_frames_per_trigger=2, expo_time=1000), now=lambda: now[0]
    )
    soft.start()
    soft.trigger()
    now[0] += 1.0
    soft.trigger()
    assert soft.produced() == 2
    now[0] += 1.0
    assert soft.produced() == 4 and not soft.complete()


def test_roi_statistics_and_profiles_match_numpy() -> None:
    p = params()
    gen = FrameGenerator(p, 64, 48)
    proc = defaults_from_schema(proc_params_schema())
    proc["statistics"].update(
        enabled=True,
        rect_rois=[{"topleft": {"x": 3, "y": 5}, "dimensions": {"x": 10, "y": 7}}],
        arc_rois=[{"center": {"x": 32, "y": 24}, "r1": 2, "r2": 9, "a1": 0, "a2": 90}],
    )
    proc["profiles"].update(
        enabled=True,
        rois=[{"topleft": {"x": 0, "y": 10}, "dimensions": {"x": 20, "y": 4}}] * 2,
        directions=["horizontal", "vertical"],
    )
    red = Reducer.from_params(proc, 64, 48)
    idx = np.array([4, 6, 8])
    frames = gen.frames(idx)
    stats = red.statistics(frames, idx, rank=1).reshape(3, 2)
    block = frames[:, 0, 5:12, 3:13].astype(float)
    np.testing.assert_allclose(stats[:, 0]["avg"], block.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(stats[:, 0]["std"], block.std(axis=(1, 2)), rtol=1e-4)
    np.testing.assert_array_equal(stats[:, 0]["frame_idx"], idx)
    assert np.all(stats["recv_idx"] == 1)
    assert np.all(stats[:, 1]["sum"] > 0)
    assert red.profile_lengths == [20, 4]
    prof = red.profile_rows(frames, idx, rank=0).reshape(3, 24)
    np.testing.assert_allclose(prof[:, :20]["max"], frames[:, 0, 10:14, 0:20].max(axis=1))
    np.testing.assert_allclose(prof[:, 20:]["sum"], frames[:, 0, 10:14, 0:20].astype(float).sum(axis=2))


def test_reducer_rejects_roi_outside_frame() -> None:
    proc = defaults_from_schema(proc_params_schema())
    proc["statistics"].update(enabled=True, rect_rois=[{"topleft": {"x": 60, "y": 0}, "dimensions": {"x": 10, "y": 1}}])
    with pytest.raises(ValueError, match=r"rect_rois\[0\]"):
        Reducer.from_params(proc, 64, 48)


def test_devencoded_round_trip_and_errors() -> None:
    frame = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    fmt, raw = encode_frame(frame, 42)
    assert fmt == "DATA_ARRAY" and len(raw) == HEADER_SIZE + frame.nbytes == 64 + frame.nbytes
    back, idx = decode_frame((fmt, raw))
    np.testing.assert_array_equal(back, frame)
    assert idx == 42
    rows = np.zeros(5, dtype=STATS_DTYPE)
    rows["frame_idx"] = np.arange(5)
    np.testing.assert_array_equal(decode_rows(encode_rows(rows), STATS_DTYPE), rows)
    with pytest.raises(DecodeError):
        decode_frame(("DATA_ARRAY", b"\0" * HEADER_SIZE))
    with pytest.raises(DecodeError):
        decode_frame(("DATA_ARRAY", raw[:100]))


def test_clock_stop_freezes_the_count() -> None:
    now = [0.0]
    clock = FrameClock(params(nb_frames=0, expo_time=1000), now=lambda: now[0])
    clock.start()
    now[0] += 0.0105
    clock.stop()
    now[0] += 5.0
    assert clock.produced() == 10
