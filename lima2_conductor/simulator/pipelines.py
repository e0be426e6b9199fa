"""The simulated Failing, SMX, XPCS and FAI pipelines of one receiver (no Tango here).

Same contract as :class:`~lima2_conductor.simulator.pipeline.LegacyPipeline`: the
receiver calls ``activate``, then ``process`` (blocking, from a worker thread, one call
at a time), then ``finish``; the processing device reads counters, pops rows and gets
frames from its event loop. Each class declares its sources in ``core.lima2``; here it
says how a batch of input frames becomes their outputs (see ``analysis``).

Outputs are recomputed from the frame generator on request, except the SMX accumulations
(a running state), kept for the newest ``ACC_BUFFER`` frames.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core import lima2
from ..core.devencoded import encode_frame, encode_rows, encode_smx_sparse, encode_sparse, encode_vector
from . import analysis
from .frames import FrameGenerator, FrameGeometry
from .pipeline import FrameNotAvailable
from .reduction import Reducer
from .saving import FrameWriter, check_target
from .sparse_saving import SparseWriter

ACC_BUFFER = 16
"""SMX accumulated images kept per receiver (they cannot be recomputed cheaply)."""


class PipelineFailure(RuntimeError):
    """The processing failed (what the Failing pipeline is for)."""


class ClassPipeline:
    """Counters, row queues, frame buffer index and saving channels of one run."""

    spec: lima2.PipelineSpec

    def __init__(
        self,
        uuid: str,
        rank: int,
        generator: FrameGenerator,
        acq_params: dict[str, Any],
        proc_params: dict[str, Any],
    ) -> None:
        self.uuid = uuid
        self.rank = rank
        self.generator = generator
        self.geometry = generator.geometry
        self.proc_params = proc_params
        self.class_name = self.spec.class_name
        g = self.geometry
        self.reducer = Reducer.from_params(proc_params, g.width, g.height) if "statistics" in proc_params else Reducer()
        self.fifo_size = int(proc_params.get("fifo", {}).get("nb_fifo_frames", 100))
        self.frame_idx_enabled = bool(proc_params.get("frame_idx_enabled", False))
        self._lock = threading.Lock()
        self._processed = np.empty(1024, dtype=np.int64)
        self.nb_source = 0
        self.nb_processed = 0
        self.nb_saved = 0
        self.last_idx = -1
        self.queues: dict[str, list[npt.NDArray]] = {}
        self.finished = False
        self.error = ""
        self.dense_writers: dict[str, FrameWriter] = {}
        self.sparse_writers: dict[str, SparseWriter] = {}
        for source in self.spec.saved_sources(proc_params):
            saving = proc_params[source.saving or ""]
            check_target(saving)
            if source.kind in (lima2.SPARSE, lima2.SMX_SPARSE):
                self.sparse_writers[source.name] = SparseWriter(saving, self.sparse_dtype)
            else:
                self.dense_writers[source.name] = FrameWriter(saving, self.geometry_of(source), acq_params, proc_params)

    # -- what each class defines -------------------------------------------------------
    sparse_dtype = np.dtype("<u2")

    def geometry_of(self, source: lima2.FrameSource) -> FrameGeometry:
        """Geometry of a source's frames (a vector is 1 x 1 x length)."""
        return self.geometry

    def info(self, attr: str) -> dict[str, Any]:
        """The frame-info attribute ``attr`` (JSON object)."""
        for source in self.spec.frame_sources:
            if source.info_attr == attr:
                g = self.geometry_of(source)
                if source.kind == lima2.VECTOR:
                    return {"length": g.width, "pixel_type": g.pixel_type}
                return g.info()
        return self.geometry.info()

    def compute(self, frames: npt.NDArray, idx: npt.NDArray[np.int64]) -> dict[str, Any]:
        """Outputs of a batch: per source name, a stack (dense) or a list (sparse); and the
        class's extra row queues under ``rows:<queue>``."""
        return {}

    def encode(self, source: lima2.FrameSource, frame_idx: int) -> tuple[str, bytes]:
        """Frame ``frame_idx`` of ``source``, recomputed (it was processed by this receiver)."""
        out = self.compute(self.generator.frames(np.array([frame_idx])), np.array([frame_idx], dtype=np.int64))
        value = out[source.name][0]
        return encode_frame(value, frame_idx)

    def activate(self) -> None:
        """Called when the acquisition starts."""

    # -- worker-thread side ----------------------------------------------------------------
    def process(self, indices: npt.NDArray[np.int64], should_stop: Callable[[], bool] = lambda: False) -> None:
        g = self.geometry
        batch = max(1, (16 * 1024 * 1024) // max(1, int(np.prod(g.shape)) * g.dtype.itemsize))
        for start in range(0, len(indices), batch):
            if should_stop():
                return
            self._process(indices[start : start + batch])

    def _process(self, idx: npt.NDArray[np.int64]) -> None:
        with self._lock:
            self.nb_source += len(idx)
        frames = self.generator.frames(idx)
        out = self.compute(frames, idx)
        rows: dict[str, npt.NDArray] = {k[5:]: v for k, v in out.items() if k.startswith("rows:")}
        if self.reducer.stats_regions:
            rows[lima2.ROI_STATS_GETTER] = self.reducer.statistics(frames, idx, self.rank)
        if self.reducer.profiles:
            rows[lima2.ROI_PROFILES_GETTER] = self.reducer.profile_rows(frames, idx, self.rank)
        if self.frame_idx_enabled:
            fi = np.empty(len(idx), dtype=lima2.FRAME_IDX_DTYPE)
            fi["recv_idx"] = self.rank
            fi["frame_idx"] = idx
            rows[lima2.FRAME_IDX_GETTER] = fi
        for name, writer in self.dense_writers.items():
            writer.write(out[name], idx)
        for name, sparse_writer in self.sparse_writers.items():
            for frame_idx, item in zip(idx, out[name], strict=True):
                sparse_writer.add(int(frame_idx), *item)
        with self._lock:
            n = self.nb_processed
            while n + len(idx) > len(self._processed):
                self._processed = np.concatenate([self._processed, np.empty_like(self._processed)])
            self._processed[n : n + len(idx)] = idx
            self.nb_processed += len(idx)
            self.nb_saved = min((w.nb_saved for w in self.dense_writers.values()), default=0)
            self.last_idx = int(idx[-1])
            for name, chunk in rows.items():
                self.queues.setdefault(name, []).append(chunk)

    def finish(self) -> None:
        """Close the files; the pipeline is finished afterwards."""
        failure: Exception | None = None
        try:
            for writer in (*self.dense_writers.values(), *self.sparse_writers.values()):
                try:  # every writer closes, whatever the others do
                    writer.close()
                except Exception as exc:  # noqa: BLE001 - the first one is raised below
                    failure = failure or exc
        finally:
            with self._lock:  # the frames a failed write saved before it failed count too
                self.nb_saved = min((w.nb_saved for w in self.dense_writers.values()), default=0)
            self.finished = True
        if failure is not None:
            raise failure

    # -- event-loop side ---------------------------------------------------------------------
    def progress_counters(self) -> dict[str, int]:
        with self._lock:
            out = dict.fromkeys(self.spec.counters, self.nb_processed)
            out["nb_frames_source"] = self.nb_source
            out[self.spec.saved_counter] = self.nb_saved
            return out

    def last_frames(self) -> dict[str, int]:
        with self._lock:
            return dict.fromkeys(self.spec.last_keys, self.last_idx)

    def pop(self, getter: str, dtype: np.dtype) -> tuple[str, bytes]:
        with self._lock:
            chunks = self.queues.pop(getter, [])
        return encode_rows(np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype))

    def locate(self, frame_idx: int) -> int:
        """The global index of a frame still in the buffer (``-1``: the newest)."""
        with self._lock:
            n = self.nb_processed
            window = self._processed[max(0, n - self.fifo_size) : n]
        if frame_idx == -1:
            if n == 0:
                raise FrameNotAvailable("no frame processed yet")
            return int(window[-1])
        pos = np.searchsorted(window, frame_idx)
        if pos >= len(window) or window[pos] != frame_idx:
            raise FrameNotAvailable(
                f"frame {frame_idx} is not in the buffer of receiver {self.rank} (holds its last {len(window)} frames)"
            )
        return frame_idx

    def get(self, source: str, frame_idx: int) -> tuple[str, bytes]:
        return self.encode(self.spec.source(source), self.locate(frame_idx))


class FailingPipeline(ClassPipeline):
    """Counts frames and fails where its params say: at Prepare, at activation (start), or
    on global frame ``failed_frame_idx`` (0 = never)."""

    spec = lima2.FAILING

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if self.proc_params["failed_on_prepare"]:
            raise PipelineFailure("simulated failure on prepare (failed_on_prepare)")
        self.fail_at = int(self.proc_params["failed_frame_idx"])

    def activate(self) -> None:
        if self.proc_params["failed_on_activate"]:
            raise PipelineFailure("simulated failure on activate (failed_on_activate)")

    def _process(self, idx: npt.NDArray[np.int64]) -> None:
        if self.fail_at > 0 and np.any(idx == self.fail_at):
            before = idx[idx < self.fail_at]
            if len(before):
                super()._process(before)
            with self._lock:
                self.nb_source += 1
            raise PipelineFailure(f"simulated failure while processing frame {self.fail_at} (failed_frame_idx)")
        super()._process(idx)


class SmxPipeline(ClassPipeline):
    """Corrected frame (float32, channel 0), peaks by sigma clipping, peak counters, and the
    running accumulations of corrected frames and of peak images."""

    spec = lima2.SMX
    sparse_dtype = np.dtype("<f4")

    def __init__(self, *args: Any) -> None:
        generator: FrameGenerator = args[2]  # the output geometry is needed by the writers
        g = generator.geometry
        self.out_geometry = FrameGeometry(g.width, g.height, 1, lima2.FLOAT_PIXEL_TYPE)
        super().__init__(*args)
        self.bins = analysis.RadialBins.of(g.width, g.height)
        fai = self.proc_params["fai"]
        self.cutoff, self.cycle, self.noise = float(fai["cutoff_pick"]), int(fai["cycle"]), float(fai["noise"])
        self.normalization = float(fai["normalization_factor"]) or 1.0
        self.reset_every = int(fai["acc_nb_frames_reset"])
        self._acc_corrected = np.zeros((g.height, g.width), dtype=np.float32)
        self._acc_peaks = np.zeros((g.height, g.width), dtype=np.float32)
        self._acc_count = 0
        self._acc: OrderedDict[int, tuple[npt.NDArray, npt.NDArray]] = OrderedDict()

    def geometry_of(self, source: lima2.FrameSource) -> FrameGeometry:
        return self.out_geometry

    def corrected(self, frames: npt.NDArray) -> npt.NDArray[np.float32]:
        out = frames[:, :1].astype(np.float32)
        return out if self.normalization == 1.0 else out / np.float32(self.normalization)

    def peaks(self, frames: npt.NDArray, corrected: npt.NDArray[np.float32]) -> list[analysis.Peaks]:
        """Peaks of each frame; on the integer input itself when it equals the corrected
        frame (the same values, found faster on their histogram)."""
        exact = self.normalization == 1.0 and np.issubdtype(frames.dtype, np.integer) and frames.dtype.itemsize <= 2
        source = frames[:, 0] if exact else corrected[:, 0]
        return [analysis.find_peaks(f, self.bins, self.cutoff, self.cycle, self.noise) for f in source]

    def compute(self, frames: npt.NDArray, idx: npt.NDArray[np.int64]) -> dict[str, Any]:
        g = self.geometry
        corrected = self.corrected(frames)
        peaks = self.peaks(frames, corrected)
        counts = np.empty(len(idx), dtype=lima2.PEAK_COUNTER_DTYPE)
        counts["frame_idx"], counts["recv_idx"] = idx, self.rank
        counts["nb_peaks"] = [len(p.index) for p in peaks]
        saved = {"acc_corrected", "acc_peaks"} & set(self.dense_writers)
        acc_c = np.empty((len(idx), 1, g.height, g.width), dtype=np.float32) if saved else None
        acc_p = np.empty_like(acc_c) if saved else None
        for k, (frame_idx, p) in enumerate(zip(idx, peaks, strict=True)):
            if self.reset_every and self._acc_count == self.reset_every:
                self._acc_corrected[:] = 0
                self._acc_peaks[:] = 0
                self._acc_count = 0
            self._acc_corrected += corrected[k, 0]
            self._acc_peaks.reshape(-1)[p.index] += p.intensity
            self._acc_count += 1
            held = (self._acc_corrected[np.newaxis].copy(), self._acc_peaks[np.newaxis].copy())
            if acc_c is not None and acc_p is not None:
                acc_c[k], acc_p[k] = held
            with self._lock:
                self._acc[int(frame_idx)] = held
                while len(self._acc) > ACC_BUFFER:
                    self._acc.popitem(last=False)
        return {
            "frame": corrected,
            "sparse_frame": [(p.index, p.intensity, p.background_avg, p.background_std) for p in peaks],
            "acc_corrected": acc_c,
            "acc_peaks": acc_p,
            f"rows:{lima2.PEAK_COUNTERS_GETTER}": counts,
        }

    def encode(self, source: lima2.FrameSource, frame_idx: int) -> tuple[str, bytes]:
        g = self.geometry
        if source.name in ("acc_corrected", "acc_peaks"):
            with self._lock:
                held = self._acc.get(frame_idx)
            if held is None:
                raise FrameNotAvailable(f"{source.name} of frame {frame_idx} has left the buffer")
            return encode_frame(held[0 if source.name == "acc_corrected" else 1], frame_idx)
        frames = self.generator.frames(np.array([frame_idx]))
        corrected = self.corrected(frames)
        if source.kind == lima2.SMX_SPARSE:
            p = self.peaks(frames, corrected)[0]
            return encode_smx_sparse(
                g.width, g.height, p.index, p.intensity, p.background_avg, p.background_std, frame_idx
            )
        return encode_frame(corrected[0], frame_idx)


class XpcsPipeline(ClassPipeline):
    """Processed frame (input minus its median, clipped at 0), its non-zero pixels as a
    sparse frame and their count as the fill factor; the accumulated frame is the processed
    frame (accumulation of one frame)."""

    spec = lima2.XPCS

    def compute(self, frames: npt.NDArray, idx: npt.NDArray[np.int64]) -> dict[str, Any]:
        processed = analysis.xpcs_process(frames)
        sparse = [analysis.sparse_of(f[0]) for f in processed]
        fill = np.empty(len(idx), dtype=lima2.FILL_FACTOR_DTYPE)
        fill["frame_idx"], fill["recv_idx"] = idx, self.rank
        fill["fill_factor"] = [len(s[0]) for s in sparse]
        return {
            "input_frame": frames,
            "frame": processed,
            "accumulated_frame": processed,
            "sparse_frame": sparse,
            f"rows:{lima2.FILL_FACTORS_GETTER}": fill,
        }

    def encode(self, source: lima2.FrameSource, frame_idx: int) -> tuple[str, bytes]:
        frames = self.generator.frames(np.array([frame_idx]))
        if source.name == "input_frame":
            return encode_frame(frames[0], frame_idx)
        processed = analysis.xpcs_process(frames)
        if source.kind == lima2.SPARSE:
            index, values = analysis.sparse_of(processed[0, 0])
            return encode_sparse(self.geometry.width, self.geometry.height, index, values, frame_idx)
        return encode_frame(processed[0], frame_idx)


class FaiPipeline(ClassPipeline):
    """The input frame, and its azimuthal average around the frame centre."""

    spec = lima2.FAI

    def __init__(self, *args: Any) -> None:
        # the vector length is needed before the writers are made
        generator: FrameGenerator = args[2]
        g = generator.geometry
        self.bins = analysis.RadialBins.of(g.width, g.height)
        self.vector_geometry = FrameGeometry(self.bins.nb_bins, 1, 1, lima2.FLOAT_PIXEL_TYPE)
        super().__init__(*args)
        self.normalization = float(self.proc_params["fai"]["normalization_factor"]) or 1.0

    def geometry_of(self, source: lima2.FrameSource) -> FrameGeometry:
        return self.vector_geometry if source.kind == lima2.VECTOR else self.geometry

    def compute(self, frames: npt.NDArray, idx: npt.NDArray[np.int64]) -> dict[str, Any]:
        vectors = analysis.azimuthal_average(frames[:, 0], self.bins, self.normalization)
        return {"frame": frames, "fai_averint": vectors.reshape(len(idx), 1, 1, -1)}

    def encode(self, source: lima2.FrameSource, frame_idx: int) -> tuple[str, bytes]:
        frames = self.generator.frames(np.array([frame_idx]))
        if source.kind == lima2.VECTOR:
            return encode_vector(analysis.azimuthal_average(frames[:, 0], self.bins, self.normalization)[0], frame_idx)
        return encode_frame(frames[0], frame_idx)


CLASSES: dict[str, type[ClassPipeline]] = {
    cls.spec.class_name: cls for cls in (FailingPipeline, SmxPipeline, XpcsPipeline, FaiPipeline)
}
