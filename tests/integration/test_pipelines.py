"""Every processing class conducted end to end on the simulators (two receivers, round
robin): frame sources, reduced data in global order, master files, Failing faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tango

from lima2_conductor.cli.launcher import LocalSystem, receiver_name, wait_for
from lima2_conductor.core import lima2
from lima2_conductor.core.devencoded import decode_frame, decode_rows, decode_sparse, decode_vector
from tests.conftest import DYNAMIC, start
from tests.integration.conftest import reason

NB = 20
RECT = {"topleft": {"x": 10, "y": 12}, "dimensions": {"x": 30, "y": 20}}
CLASSES = [lima2.LEGACY, lima2.SMX, lima2.XPCS, lima2.FAI]


def processing(spec: lima2.PipelineSpec, data_dir: Path) -> dict[str, Any]:
    proc: dict[str, Any] = {"class_name": spec.class_name, "statistics": {"enabled": True, "rect_rois": [RECT]}}
    for k, channel in enumerate(spec.saving_channels):
        proc[channel] = {
            "enabled": True,
            "base_path": str(data_dir),
            "filename_prefix": f"p{k}",
            "nb_frames_per_file": 4,
        }
    return proc


def frame(c: tango.DeviceProxy, source: str, idx: int) -> tuple[str, bytes]:
    return c.GetFrame([[idx], [source]])


def end(c: tango.DeviceProxy, timeout: float = 30) -> str:
    wait_for(lambda: c.run_state in ("DONE", "FAULT"), timeout, "end of run")
    return str(c.run_state)


@pytest.mark.parametrize("spec", CLASSES, ids=[s.class_name for s in CLASSES])
def test_each_pipeline_runs_to_done(conductor: tango.DeviceProxy, data_dir: Path, spec: lima2.PipelineSpec) -> None:
    c = conductor
    c.acq_nb_frames = NB
    c.Prepare(json.dumps({"processing": processing(spec, data_dir)}))
    assert c.processing_class == spec.class_name
    c.Start()
    assert end(c) == "DONE", c.Status()
    assert c.nb_frames_processed == NB

    channels = json.loads(c.frame_channels)
    assert sorted(channels) == sorted(s.name for s in spec.frame_sources)
    for source in spec.frame_sources:
        ch = channels[source.name]
        assert ch["type"] == source.kind and ch["getter"] == source.getter and len(ch["shape"]) == 3
        for i in (0, 7, NB - 1):
            raw = frame(c, source.name, i)
            assert raw[0] == source.encoding
            if source.kind in (lima2.SPARSE, lima2.SMX_SPARSE):
                sparse = decode_sparse(raw)
                assert sparse.frame_idx == i and (sparse.height, sparse.width) == tuple(ch["shape"][1:])
                dense, idx = decode_frame(frame(c, ch["dense"], i))
                np.testing.assert_array_equal(dense, sparse.densify())
            elif source.kind == lima2.VECTOR:
                vector, idx = decode_vector(raw)
                assert idx == i and vector.shape == (ch["shape"][2],)
            else:
                image, idx = decode_frame(raw)
                assert idx == i and list(image.shape) == ch["shape"]
        decode_frame(frame(c, f"{source.name}{lima2.DENSE_SUFFIX}", -1))

    # reduced data: complete, in global order
    stats = decode_rows(c.GetReducedData([[0, 0, 0], ["roi_stats"]]), lima2.STATS_DTYPE)
    assert len(stats) == NB
    for reduced in spec.reduced({}):
        rows = decode_rows(c.GetReducedData([[0, 0, 0], [reduced.name]]), reduced.dtype)
        assert len(rows) == NB
        name = reduced.dtype.names[-1]
        sparse_counts = [len(decode_sparse(frame(c, "sparse_frame", i)).index) for i in range(NB)]
        assert rows[name].tolist() == sparse_counts

    # one master file per enabled dense, vector or sparse channel, agreeing with GetFrame
    masters = json.loads(c.master_files)
    expected = [s.name for s in spec.frame_sources if s.saving and s.kind != lima2.SMX_SPARSE]
    assert sorted(masters) == sorted(expected)
    for name, (path, dataset) in masters.items():
        source = spec.source(name)
        with h5py.File(path) as f:
            data = f[dataset]
            if source.kind == lima2.SPARSE:
                ptr = data["frame_ptr"][()]
                assert len(ptr) == NB + 1
                for i in (0, 5, NB - 1):
                    sparse = decode_sparse(frame(c, name, i))
                    np.testing.assert_array_equal(data["index"][ptr[i] : ptr[i + 1]], sparse.index)
                    np.testing.assert_array_equal(data["intensity"][ptr[i] : ptr[i + 1]], sparse.intensity)
                continue
            assert len(data) == NB
            for i in (0, 5, NB - 1):
                raw = frame(c, name, i)
                if source.kind == lima2.VECTOR:
                    np.testing.assert_array_equal(data[i].reshape(-1), decode_vector(raw)[0])
                else:
                    np.testing.assert_array_equal(data[i], decode_frame(raw)[0][0])


def failing(c: tango.DeviceProxy, **params: Any) -> None:
    c.Prepare(json.dumps({"processing": {"class_name": lima2.FAILING.class_name, **params}}))


def test_failing_defaults_succeed(conductor: tango.DeviceProxy) -> None:
    c = conductor
    c.acq_nb_frames = 30
    failing(c)
    assert c.processing_class == lima2.FAILING.class_name
    assert json.loads(c.frame_channels) == {}
    c.Start()
    assert end(c) == "DONE", c.Status()
    assert c.nb_frames_processed == 30


def test_failing_at_a_frame_faults_then_reset_recovers(conductor: tango.DeviceProxy, system: LocalSystem) -> None:
    c = conductor
    c.acq_nb_frames = 30
    failing(c, failed_frame_idx=10)
    c.Start()
    assert end(c) == "FAULT"
    assert "frame 10" in c.Status() or any("frame 10" in e for e in c.errors), (c.Status(), c.errors)
    assert tango.DeviceProxy(receiver_name(0)).acq_state == 4  # FAULT: receiver 0 holds frame 10
    c.Reset()
    wait_for(lambda: c.run_state == "IDLE", 10, "reset")
    failing(c)
    c.Start()
    assert end(c) == "DONE", c.Status()


def test_failing_on_activate_and_on_prepare(conductor: tango.DeviceProxy) -> None:
    c = conductor
    failing(c, failed_on_activate=True)
    c.Start()
    assert end(c, 10) == "FAULT"
    assert any("activate" in e for e in c.errors), c.errors
    c.Reset()
    wait_for(lambda: c.run_state == "IDLE", 10, "reset")
    with pytest.raises(tango.DevFailed) as info:
        failing(c, failed_on_prepare=True)
    assert "prepare" in str(info.value).lower() and reason(info)
    failing(c)
    c.Start()
    assert end(c) == "DONE", c.Status()


def test_smx_accumulation_must_divide_among_receivers(conductor: tango.DeviceProxy) -> None:
    with pytest.raises(tango.DevFailed) as info:
        conductor.Prepare(
            json.dumps({"processing": {"class_name": lima2.SMX.class_name, "fai": {"acc_nb_frames_xfer": 3}}})
        )
    assert reason(info) == "PARAM_ERROR" and "multiple" in str(info.value)


@pytest.fixture(scope="module")
def dynamic(tango_db: LocalSystem) -> Any:
    yield from start(tango_db, DYNAMIC, conductor=True)


@pytest.mark.parametrize("spec", [lima2.SMX, lima2.XPCS, lima2.FAI], ids=["smx", "xpcs", "fai"])
def test_dynamic_dispatch(dynamic: LocalSystem, data_dir: Path, spec: lima2.PipelineSpec) -> None:
    """Frames dispatched as the detector decides: lookups follow the frame-index channel,
    reduced data still come in global order, master files follow the same order."""
    c = tango.DeviceProxy(DYNAMIC.conductor)
    wait_for(lambda: c.State() in (tango.DevState.ON, tango.DevState.STANDBY, tango.DevState.FAULT), 10, "conductor")
    c.Stop()
    c.Reset()
    c.acq_nb_frames = NB
    c.acq_expo_time = 0.001
    proc = processing(spec, data_dir)
    c.Prepare(json.dumps({"control": {"det": {"dispatch_mode": lima2.RANDOM_DISPATCH}}, "processing": proc}))
    c.Start()
    assert end(c) == "DONE", c.Status()
    stats = decode_rows(c.GetReducedData([[0, 0, 0], ["roi_stats"]]), lima2.STATS_DTYPE)
    assert len(stats) == NB
    for i in range(NB):
        assert json.loads(c.Lookup(i))["frame_idx"] == i
        raw = frame(c, spec.frame_sources[0].name, i)
        assert decode_frame(raw)[1] == i
    for name, (path, dataset) in json.loads(c.master_files).items():
        if spec.source(name).kind != lima2.DENSE:
            continue
        with h5py.File(path) as f:
            for i in (0, 3, NB - 1):
                np.testing.assert_array_equal(f[dataset][i], decode_frame(frame(c, name, i))[0][0])


def test_failing_refuses_dynamic_dispatch(dynamic: LocalSystem) -> None:
    c = tango.DeviceProxy(DYNAMIC.conductor)
    with pytest.raises(tango.DevFailed) as info:
        failing(c)
    assert reason(info) == "PARAM_ERROR" and "dynamic" in str(info.value)
