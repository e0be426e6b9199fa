"""The simulated SMX, XPCS, FAI and Failing pipelines against independent numpy
computations from the dense frames, and the sparse / vector codecs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from lima2_conductor.core import lima2
from lima2_conductor.core.devencoded import (
    DecodeError,
    decode_frame,
    decode_rows,
    decode_sparse,
    decode_vector,
    densify,
    encode_smx_sparse,
    encode_sparse,
    encode_vector,
)
from lima2_conductor.core.params import defaults_from_schema, validate
from lima2_conductor.simulator.frames import FrameGenerator
from lima2_conductor.simulator.pipeline import FrameNotAvailable
from lima2_conductor.simulator.pipelines import CLASSES, PipelineFailure
from lima2_conductor.simulator.schemas import SCHEMAS, acq_params_schema, proc_params_schema

W, H = 48, 40


def acq(grow: float = 0.5, peaks: int = 1) -> dict[str, Any]:
    p = defaults_from_schema(acq_params_schema(W, H))
    p["det"]["generator"]["gauss"]["grow_factor"] = grow
    if peaks > 1:
        p["det"]["generator"]["gauss"]["peaks"] = [
            {"x0": 8.0 + 14 * k, "y0": 10.0 + 8 * k, "fwhm": 3.0, "max": 1000.0} for k in range(peaks)
        ]
    p["det"]["nb_prefetch_frames"] = 5
    return p


def make(class_name: str, grow: float = 0.5, peaks: int = 1, **changes: Any) -> Any:
    proc = defaults_from_schema(proc_params_schema(class_name))
    for key, value in changes.items():
        proc[key] = {**proc[key], **value} if isinstance(value, dict) else value
    validate(proc, proc_params_schema(class_name), "proc_params")
    a = acq(grow, peaks)
    return CLASSES[class_name]("u", 0, FrameGenerator(a, W, H), a, proc)


def radius_bins() -> np.ndarray:
    """Integer radius of every pixel around the frame centre, written out again."""
    out = np.empty((H, W), dtype=np.int64)
    for y in range(H):
        for x in range(W):
            out[y, x] = int(np.floor(np.sqrt((x + 0.5 - W / 2) ** 2 + (y + 0.5 - H / 2) ** 2)))
    return out


def test_every_class_schema_has_defaults_and_the_bliss_keys() -> None:
    for name in SCHEMAS:
        d = defaults_from_schema(proc_params_schema(name))
        validate(d, proc_params_schema(name), "proc_params")
        assert d["class_name"] == name
    legacy = defaults_from_schema(proc_params_schema(lima2.LEGACY.class_name))
    for key in ("mask", "flatfield", "background", "max_countrate_protection", "accumulation", "fifo"):
        assert key in legacy
    assert set(legacy["buffers"]) >= {"nb_frames_buffer", "nb_input_frames_buffer", "nb_frame_idx_buffer"}
    assert "command" in legacy["max_countrate_protection"] and "args" in legacy["max_countrate_protection"]
    smx = defaults_from_schema(proc_params_schema(lima2.SMX.class_name))
    assert smx["fai"]["cutoff_pick"] == 4.0 and smx["fai"]["acc_nb_frames_xfer"] == 10
    for channel in lima2.SMX.saving_channels:
        assert {"enabled", "base_path", "filename_rank", "nb_dimensions", "compression"} <= set(smx[channel])
    failing = defaults_from_schema(proc_params_schema(lima2.FAILING.class_name))
    assert failing == {
        "class_name": lima2.FAILING.class_name,
        "failed_on_prepare": False,
        "failed_on_activate": False,
        "failed_frame_idx": 0,
    }


def test_core_version_is_what_bliss_accepts() -> None:
    import re

    m = re.match(r"^((?:[A-Za-z0-9_]+-)+)(\d+)\.(\d+)\.(\d+)", lima2.CORE_VERSION)
    assert m and f"{m.group(1)}{m.group(2)}.{m.group(3)}" == "core-1.2"


def test_smx_peaks_follow_an_independent_threshold() -> None:
    p = make(lima2.SMX.class_name)
    idx = np.arange(12, dtype=np.int64)
    p.process(idx)
    rows = decode_rows(p.pop(lima2.PEAK_COUNTERS_GETTER, lima2.PEAK_COUNTER_DTYPE), lima2.PEAK_COUNTER_DTYPE)
    assert rows["frame_idx"].tolist() == idx.tolist()
    frames = p.generator.frames(idx)[:, 0].astype(np.float64)
    expected = []
    for f in frames:
        bg = np.ones(f.shape, dtype=bool)
        for _ in range(3):  # default cycle, cutoff_pick 4, noise 0.6
            thr = f[bg].mean() + 4.0 * max(f[bg].std(), 0.6)
            bg = f <= thr
        expected.append(int((~bg).sum()))
    assert rows["nb_peaks"].tolist() == expected
    assert min(expected) > 0
    more = make(lima2.SMX.class_name, peaks=3)  # three narrower peaks: each counted
    more.process(idx)
    rows3 = decode_rows(more.pop(lima2.PEAK_COUNTERS_GETTER, lima2.PEAK_COUNTER_DTYPE), lima2.PEAK_COUNTER_DTYPE)
    assert rows3["nb_peaks"].min() > 0 and rows3["nb_peaks"].tolist() != rows["nb_peaks"].tolist()
    sparse = decode_sparse(p.get("sparse_frame", 7))
    assert sparse.frame_idx == 7 and len(sparse.index) == expected[7]
    dense = frames[7]
    np.testing.assert_array_equal(sparse.intensity, dense.reshape(-1)[sparse.index].astype(np.float32))
    assert len(sparse.background_avg) == radius_bins().max() + 1
    peaks_img = sparse.densify()[0]
    acc, _ = decode_frame(p.get("acc_peaks", 11))
    total = np.zeros((H, W), np.float32)
    for k in range(12):
        total += decode_sparse(p.get("sparse_frame", k)).densify()[0]
    np.testing.assert_allclose(acc[0], total, rtol=1e-6)
    assert peaks_img.dtype == np.float32


def test_smx_accumulation_reset_and_buffer() -> None:
    p = make(lima2.SMX.class_name, fai={"acc_nb_frames_reset": 3})
    p.process(np.arange(40, dtype=np.int64))
    acc, _ = decode_frame(p.get("acc_corrected", 39))  # local frames 36..39: reset after 36, 37, 38
    frames = p.generator.frames(np.array([39]))[:, 0].astype(np.float32)
    np.testing.assert_allclose(acc[0], frames.sum(axis=0))
    with pytest.raises(FrameNotAvailable):
        p.get("acc_corrected", 2)


def test_xpcs_sparse_frames_rebuild_the_dense_frame() -> None:
    p = make(lima2.XPCS.class_name)
    idx = np.arange(0, 20, 2, dtype=np.int64)
    p.process(idx)
    fill = decode_rows(p.pop(lima2.FILL_FACTORS_GETTER, lima2.FILL_FACTOR_DTYPE), lima2.FILL_FACTOR_DTYPE)
    assert fill["frame_idx"].tolist() == idx.tolist()
    for k, i in enumerate(idx):
        raw = p.generator.frame(int(i))
        expected = np.clip(raw.astype(np.int64) - int(np.median(raw[0])), 0, None)
        dense, frame_idx = decode_frame(p.get("frame", int(i)))
        assert frame_idx == i
        np.testing.assert_array_equal(dense, expected)
        fmt, _ = sparse_raw = p.get("sparse_frame", int(i))
        assert fmt == lima2.SPARSE_FRAME
        sparse = decode_sparse(sparse_raw)
        np.testing.assert_array_equal(sparse.densify(), expected[:1])
        assert fill["fill_factor"][k] == np.count_nonzero(expected[0]) == len(sparse.index)
        rebuilt, _ = decode_frame(densify(sparse_raw))
        np.testing.assert_array_equal(rebuilt, expected[:1])
        np.testing.assert_array_equal(decode_frame(p.get("input_frame", int(i)))[0], raw)
    assert 0 < fill["fill_factor"].max() < W * H  # sparse, not empty


def test_fai_vectors_are_the_azimuthal_average() -> None:
    p = make(lima2.FAI.class_name)
    p.process(np.arange(6, dtype=np.int64))
    bins = radius_bins()
    assert p.info(lima2.VECTOR_INFO) == {"length": int(bins.max()) + 1, "pixel_type": lima2.FLOAT_PIXEL_TYPE}
    for i in range(6):
        vector, frame_idx = decode_vector(p.get("fai_averint", i))
        frame = p.generator.frame(i)[0].astype(np.float64)
        expected = [frame[bins == b].mean() for b in range(bins.max() + 1)]
        assert frame_idx == i
        np.testing.assert_allclose(vector, expected, rtol=1e-5)
    assert decode_frame(densify(p.get("fai_averint", 2)))[0].shape == (1, 1, bins.max() + 1)


def test_saving_channels_write_files(tmp_path: Path) -> None:
    def channel(prefix: str) -> dict[str, Any]:
        return {"enabled": True, "base_path": str(tmp_path), "filename_prefix": prefix, "nb_frames_per_file": 4}

    p = make(lima2.XPCS.class_name, saving_dense=channel("dense"), saving_sparse=channel("sparse"))
    p.process(np.arange(10, dtype=np.int64))
    p.finish()
    assert p.progress_counters()["nb_frames_saved"] == 10
    with h5py.File(tmp_path / "sparse_0_00001.h5") as f:
        g = f["entry_0000/instrument/detector/data"]
        ptr = g["frame_ptr"][()]
        assert len(ptr) == 5 and ptr[0] == 0 and ptr[-1] == len(g["index"])
        sparse = decode_sparse(p.get("sparse_frame", 5))
        np.testing.assert_array_equal(g["index"][ptr[1] : ptr[2]], sparse.index)
        np.testing.assert_array_equal(g["intensity"][ptr[1] : ptr[2]], sparse.intensity)
    with h5py.File(tmp_path / "dense_0_00002.h5") as f:
        np.testing.assert_array_equal(
            f["entry_0000/instrument/detector/data"][1], decode_frame(p.get("frame", 9))[0][0]
        )
    q = make(lima2.FAI.class_name, saving_fai=channel("fai"))
    q.process(np.arange(3, dtype=np.int64))
    q.finish()
    with h5py.File(tmp_path / "fai_0_00000.h5") as f:
        np.testing.assert_array_equal(
            f["entry_0000/instrument/detector/data"][2, 0], decode_vector(q.get("fai_averint", 2))[0]
        )


def test_failing_pipeline() -> None:
    with pytest.raises(PipelineFailure, match="prepare"):
        make(lima2.FAILING.class_name, failed_on_prepare=True)
    with pytest.raises(PipelineFailure, match="activate"):
        make(lima2.FAILING.class_name, failed_on_activate=True).activate()
    p = make(lima2.FAILING.class_name, failed_frame_idx=10)
    p.activate()
    p.process(np.arange(0, 8, dtype=np.int64))
    with pytest.raises(PipelineFailure, match="frame 10"):
        p.process(np.arange(8, 20, dtype=np.int64))
    assert p.progress_counters()["nb_frames_source"] == 11
    ok = make(lima2.FAILING.class_name)
    ok.process(np.arange(30, dtype=np.int64))
    assert ok.progress_counters() == {"nb_frames_source": 30, "nb_frames_saved": 0}


def test_counters_and_last_frames_have_every_key() -> None:
    for spec in (lima2.SMX, lima2.XPCS, lima2.FAI):
        p = make(spec.class_name)
        p.process(np.array([3, 5], dtype=np.int64))
        counters = p.progress_counters()
        assert counters["nb_frames_source"] == 2 and counters[spec.progress_counter] == 2
        for source in spec.frame_sources:
            if source.counter:
                assert counters[source.counter] == 2
            assert p.last_frames()[source.last_key] == 5


def test_finalise_per_class() -> None:
    smx = defaults_from_schema(proc_params_schema(lima2.SMX.class_name))
    smx["fai"]["acc_nb_frames_xfer"] = 10
    out = lima2.SMX.finalise(smx, 1, 2, True)
    assert out["fai"]["acc_nb_frames_xfer"] == 5 and out["frame_idx_enabled"]
    for channel in lima2.SMX.saving_channels:
        assert out[channel]["filename_rank"] == 1 and out[channel]["include_frame_idx"]
    with pytest.raises(lima2.PipelineRefused, match="multiple"):
        lima2.SMX.finalise(smx, 0, 3, False)
    failing = defaults_from_schema(proc_params_schema(lima2.FAILING.class_name))
    with pytest.raises(lima2.PipelineRefused, match="dynamic"):
        lima2.FAILING.finalise(failing, 0, 2, True)
    assert lima2.FAILING.finalise(failing, 1, 2, False) == failing


def test_sparse_and_vector_codecs_round_trip() -> None:
    raw = encode_sparse(4, 3, np.array([0, 5, 11]), np.array([1, 2, 70000]), 9)
    s = decode_sparse(raw)
    assert (s.width, s.height, s.frame_idx) == (4, 3, 9) and s.intensity.tolist() == [1, 2, 65535]
    assert s.densify().shape == (1, 3, 4) and s.densify()[0, 2, 3] == 65535
    smx = decode_sparse(encode_smx_sparse(4, 3, np.array([1]), np.array([2.5]), np.ones(3), np.zeros(3), 4))
    assert smx.intensity.tolist() == [2.5] and smx.background_avg.tolist() == [1, 1, 1]
    v, i = decode_vector(encode_vector(np.arange(5, dtype=np.float32), 3))
    assert v.tolist() == [0, 1, 2, 3, 4] and i == 3
    with pytest.raises(DecodeError):
        decode_sparse(("SPARSE_FRAME", b"\x00"))
    with pytest.raises(DecodeError):
        decode_sparse(("DATA_ARRAY", b""))


def test_smx_float_path_and_median_match_numpy() -> None:
    from lima2_conductor.simulator import analysis

    p = make(lima2.SMX.class_name, fai={"normalization_factor": 2.0})
    p.process(np.arange(3, dtype=np.int64))
    rows = decode_rows(p.pop(lima2.PEAK_COUNTERS_GETTER, lima2.PEAK_COUNTER_DTYPE), lima2.PEAK_COUNTER_DTYPE)
    for i, f in enumerate(p.generator.frames(np.arange(3))[:, 0].astype(np.float32) / 2):
        v = f.astype(np.float64)
        bg = np.ones(v.shape, dtype=bool)
        for _ in range(3):
            thr = v[bg].mean() + 4.0 * max(v[bg].std(), 0.6)
            bg = v <= thr
        assert rows["nb_peaks"][i] == (~bg).sum()
    rng = np.random.default_rng(1)
    for shape in ((5, 7), (4, 6), (1, 1)):
        f = rng.integers(0, 3000, size=shape).astype(np.uint16)
        assert analysis.floored_median(f) == np.floor(np.median(f))
        assert analysis.floored_median(f.astype(np.float32)) == np.floor(np.median(f))
