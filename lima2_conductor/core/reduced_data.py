"""Reduced data of a run in global frame order, merged from every receiver.

Each source (``roi_stats``: one row per ROI per frame; ``roi_profile``: one row per
profile point per frame) is stored as ``(frames, elements)`` rows of the processing
devices' dtype, placed by their ``frame_idx`` column (the global index) with one
vectorised assignment per popped chunk: no per-row Python loop.

Memory policy: a source keeps at most ``budget_bytes`` (default 256 MiB) of rows. Past
that it keeps a sliding window of the newest frames; older rows are dropped and a
client asking for them gets ``NOT_FOUND`` naming the first frame still held. Runs of
known length within the budget are allocated once at Prepare.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .errors import NotFound, ParamError
from .lima2 import STATS_DTYPE, ReducedSource

DEFAULT_BUDGET = 256 * 1024 * 1024

__all__ = ["DEFAULT_BUDGET", "STATS_DTYPE", "ReducedSource", "ReducedStore"]


@dataclass
class ReducedStore:
    """Rows of one source, slot ``g % capacity`` holding global frame ``g``."""

    source: ReducedSource
    size_hint: int = 0
    budget_bytes: int = DEFAULT_BUDGET
    rows: npt.NDArray = field(init=False)
    present: npt.NDArray[np.bool_] = field(init=False)
    base: int = 0  # oldest frame still held
    ready: int = 0  # frames [0, ready) all present (or dropped)

    def __post_init__(self) -> None:
        self.max_frames = max(1, self.budget_bytes // (self.source.dtype.itemsize * self.source.elements))
        start = min(self.max_frames, max(1024, self.size_hint))
        self.rows = np.zeros((start, self.source.elements), dtype=self.source.dtype)
        self.present = np.zeros(start, dtype=bool)

    @property
    def capacity(self) -> int:
        return len(self.present)

    def _grow(self, top: int) -> None:
        """Make room for frame ``top``: grow up to the budget, then slide the window."""
        if top < self.base + self.capacity:
            return
        if self.capacity < self.max_frames:
            new_cap = min(self.max_frames, max(top - self.base + 1, 2 * self.capacity))
            order = (np.arange(self.base, self.base + self.capacity)) % self.capacity
            rows = np.zeros((new_cap, self.source.elements), dtype=self.source.dtype)
            present = np.zeros(new_cap, dtype=bool)
            dest = np.arange(self.base, self.base + self.capacity) % new_cap
            rows[dest] = self.rows[order]
            present[dest] = self.present[order]
            self.rows, self.present = rows, present
            if top < self.base + self.capacity:
                return
        new_base = top - self.capacity + 1
        dropped = np.arange(self.base, min(new_base, self.base + self.capacity)) % self.capacity
        self.present[dropped] = False
        self.base = new_base
        self.ready = max(self.ready, self.base)

    def add(self, chunk: npt.NDArray) -> None:
        """Place rows popped from one receiver (any order, whole frames)."""
        if chunk.size == 0:
            return
        if chunk.size % self.source.elements:
            raise ValueError(f"{self.source.name}: {chunk.size} rows are not whole frames of {self.source.elements}")
        frames = chunk.reshape(-1, self.source.elements)
        gidx = frames["frame_idx"][:, 0].astype(np.int64)
        keep = gidx >= self.base
        frames, gidx = frames[keep], gidx[keep]
        if not len(gidx):
            return
        self._grow(int(gidx.max()))
        slots = gidx % self.capacity
        self.rows[slots] = frames
        self.present[slots] = True
        self._advance()

    def _advance(self) -> None:
        while self.ready < self.base + self.capacity:
            start = self.ready % self.capacity
            span = min(self.capacity - start, self.base + self.capacity - self.ready)
            window = self.present[start : start + span]
            missing = np.flatnonzero(~window)
            if len(missing):
                self.ready += int(missing[0])
                return
            self.ready += span

    def read(self, channel: int, from_frame: int, max_rows: int) -> npt.NDArray:
        """Rows of ``channel`` for frames ``[from_frame, ...)``, ready ones only, in order."""
        if not 0 <= channel < len(self.source.lengths):
            raise NotFound(f"{self.source.name} has {len(self.source.lengths)} channel(s), no channel {channel}")
        if from_frame < 0 or max_rows < 0:
            raise ParamError(f"from_frame ({from_frame}) and max_rows ({max_rows}) must be >= 0")
        if from_frame < self.base:
            raise NotFound(f"{self.source.name}: rows before frame {self.base} were dropped (memory budget)")
        stop = min(self.ready, from_frame + max_rows) if max_rows else self.ready
        if stop <= from_frame:
            return np.empty(0, dtype=self.source.dtype)
        slots = np.arange(from_frame, stop) % self.capacity
        offset = sum(self.source.lengths[:channel])
        return np.ascontiguousarray(self.rows[slots, offset : offset + self.source.lengths[channel]]).reshape(-1)
