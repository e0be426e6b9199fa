"""The simulated Legacy processing pipeline of one receiver (no Tango here).

``process`` and ``finish`` block (numpy, h5py): the receiver calls them from a
worker thread, one call at a time. Readers (counters, pops, frame getters) run on
the device's event loop; shared state is guarded by a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.devencoded import encode_frame, encode_rows
from ..core.lima2 import LEGACY
from .frames import FrameGenerator
from .reduction import FRAME_IDX_DTYPE, STATS_DTYPE, Reducer
from .saving import FrameWriter, check_target

BATCH_BYTES = 64 * 1024 * 1024
"""Frames are processed in batches of at most this many bytes."""


class FrameNotAvailable(LookupError):
    """The frame was not processed by this receiver, or left its buffer."""


class LegacyPipeline:
    """Counters, reduced-data queues, frame buffer index and saving of one run."""

    class_name = LEGACY.class_name

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
        g = self.geometry
        self.reducer = Reducer.from_params(proc_params, g.width, g.height)
        saving = proc_params["saving"]
        self.writer: FrameWriter | None = None
        if saving["enabled"]:
            check_target(saving)
            self.writer = FrameWriter(saving, g, acq_params, proc_params)
        self.fifo_size = proc_params["fifo"]["nb_fifo_frames"]
        self.frame_idx_enabled = proc_params["frame_idx_enabled"]
        self._lock = threading.Lock()
        self._processed = np.empty(1024, dtype=np.int64)
        self.nb_source = 0
        self.nb_processed = 0
        self.nb_saved = 0
        self.last_idx = -1
        self._stats: list[npt.NDArray] = []
        self._profiles: list[npt.NDArray] = []
        self._frame_idx: list[npt.NDArray] = []
        self.finished = False
        self.error: str = ""
        self.batch_frames = max(1, BATCH_BYTES // max(1, int(np.prod(g.shape)) * g.dtype.itemsize))

    # -- worker-thread side ------------------------------------------------
    def process(self, indices: npt.NDArray[np.int64], should_stop: Callable[[], bool] = lambda: False) -> None:
        """Generate, reduce and save frames ``indices`` (global, in local order)."""
        for start in range(0, len(indices), self.batch_frames):
            if should_stop():
                return
            idx = indices[start : start + self.batch_frames]
            with self._lock:
                self.nb_source += len(idx)
            frames = self.generator.frames(idx)
            stats = self.reducer.statistics(frames, idx, self.rank) if self.reducer.stats_regions else None
            profiles = self.reducer.profile_rows(frames, idx, self.rank) if self.reducer.profiles else None
            if self.writer is not None:
                self.writer.write(frames, idx)
            with self._lock:
                n = self.nb_processed
                while n + len(idx) > len(self._processed):
                    self._processed = np.concatenate([self._processed, np.empty_like(self._processed)])
                self._processed[n : n + len(idx)] = idx
                self.nb_processed += len(idx)
                self.nb_saved = self.writer.nb_saved if self.writer else 0
                self.last_idx = int(idx[-1])
                if stats is not None:
                    self._stats.append(stats)
                if profiles is not None:
                    self._profiles.append(profiles)
                if self.frame_idx_enabled:
                    rows = np.empty(len(idx), dtype=FRAME_IDX_DTYPE)
                    rows["recv_idx"] = self.rank
                    rows["frame_idx"] = idx
                    self._frame_idx.append(rows)

    def activate(self) -> None:
        """Called when the acquisition starts (nothing to do)."""

    def finish(self) -> None:
        """Close the files; the pipeline is finished afterwards."""
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            with self._lock:  # the frames a failed write saved before it failed count too
                self.nb_saved = self.writer.nb_saved if self.writer else 0
            self.finished = True

    # -- event-loop side ---------------------------------------------------
    def progress_counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "nb_frames_source": self.nb_source,
                "nb_frames_input": self.nb_processed,
                "nb_frames_processed": self.nb_processed,
                "nb_frames_saved": self.nb_saved,
            }

    def last_frames(self) -> dict[str, int]:
        with self._lock:
            return {"input_idx": self.last_idx, "processed_idx": self.last_idx}

    def _pop(self, queue: list[npt.NDArray], dtype: np.dtype) -> tuple[str, bytes]:
        with self._lock:
            chunks = list(queue)
            queue.clear()
        rows = np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype)
        return encode_rows(rows)

    def pop_statistics(self) -> tuple[str, bytes]:
        return self._pop(self._stats, STATS_DTYPE)

    def pop_profiles(self) -> tuple[str, bytes]:
        return self._pop(self._profiles, STATS_DTYPE)

    def pop_frame_idx(self) -> tuple[str, bytes]:
        return self._pop(self._frame_idx, FRAME_IDX_DTYPE)

    def get_frame(self, frame_idx: int) -> tuple[str, bytes]:
        """Frame ``frame_idx`` (global; -1 = newest) if it is still in the buffer."""
        with self._lock:
            n = self.nb_processed
            window = self._processed[max(0, n - self.fifo_size) : n]
        if frame_idx == -1:
            if n == 0:
                raise FrameNotAvailable("no frame processed yet")
            frame_idx = int(window[-1])
        pos = np.searchsorted(window, frame_idx)
        if pos >= len(window) or window[pos] != frame_idx:
            raise FrameNotAvailable(
                f"frame {frame_idx} is not in the buffer of receiver {self.rank} (holds its last {len(window)} frames)"
            )
        return encode_frame(self.generator.frame(frame_idx), frame_idx)
