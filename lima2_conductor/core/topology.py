"""Frame dispatch across receivers: who has global frame ``i``, and how many are ready.

A :class:`Topology` is the conductor's configuration (single, round robin, dynamic). For
each run it makes a :class:`Locator` (``new_run``) that answers where frames are, how
many form a contiguous prefix, and how the saved frames map onto the receivers' files.
Callers never ask which topology they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .errors import ParamError

MAX_DYNAMIC_FRAMES = 100_000_000
"""Dynamic dispatch keeps 12 bytes per frame (receiver, local index): 1.2 GB at most."""


@dataclass(frozen=True)
class FileMapping:
    """Frames of one receiver file: global ``start + step * k`` for ``k < count``,
    or the explicit ``indices`` (dynamic dispatch)."""

    file: str  # relative to the master file
    start: int
    step: int
    count: int
    indices: npt.NDArray[np.int64] | None = None


FileNamer = Callable[[int, int], str]
"""``(rank, file_idx) -> file name``."""


class Locator(Protocol):
    """Where the frames of one run are."""

    needs_frame_idx: bool  # receivers must publish the frame-index channel

    def locate(self, frame_idx: int) -> tuple[int, int]:
        """``(rank, local index)`` of a global frame; ``KeyError`` if not known yet."""
        ...

    def learn(self, rank: int, frame_indices: npt.ArrayLike) -> None:
        """Receiver ``rank`` got these global frames, in its local order."""
        ...

    def frames_ready(self, counts: Sequence[int]) -> int:
        """Length of the prefix of global frames present, given per-receiver counts."""
        ...

    def file_mappings(self, saved: Sequence[int], per_file: int, name: FileNamer) -> tuple[int, list[FileMapping]]:
        """Frame count and file mappings of the contiguous prefix of saved frames."""
        ...

    def saved_mappings(
        self, saved: Sequence[int], per_file: int, name: FileNamer
    ) -> tuple[int, list[FileMapping], list[int]]:
        """Frame count, file mappings and missing frames of every saved frame, up to the
        last one any receiver saved (a failed run: the gaps are listed, not cut)."""
        ...


@dataclass(frozen=True)
class StaticLocator:
    """Frame ``i`` is on receiver ``ordering[i % N]`` as its local frame ``i // N``."""

    ordering: tuple[int, ...]
    needs_frame_idx = False

    def locate(self, frame_idx: int) -> tuple[int, int]:
        n = len(self.ordering)
        return self.ordering[frame_idx % n], frame_idx // n

    def learn(self, rank: int, frame_indices: npt.ArrayLike) -> None:
        return None

    def frames_ready(self, counts: Sequence[int]) -> int:
        """Position ``p`` of the cycle holds frames ``p, p+N, ...``; with ``c`` of them on
        receiver ``ordering[p]``, the first missing one is ``c * N + p``."""
        n = len(self.ordering)
        return int(min(counts[self.ordering[p]] * n + p for p in range(n)))

    def file_mappings(self, saved: Sequence[int], per_file: int, name: FileNamer) -> tuple[int, list[FileMapping]]:
        total = self.frames_ready(saved)
        n = len(self.ordering)
        mappings: list[FileMapping] = []
        for pos, rank in enumerate(self.ordering):
            local_total = len(range(pos, total, n))  # this receiver's frames inside the prefix
            for k in range((local_total + per_file - 1) // per_file):
                count = min(per_file, local_total - k * per_file)
                mappings.append(FileMapping(name(rank, k), pos + n * k * per_file, n, count))
        return total, mappings

    def saved_mappings(
        self, saved: Sequence[int], per_file: int, name: FileNamer
    ) -> tuple[int, list[FileMapping], list[int]]:
        n = len(self.ordering)
        ranks = enumerate(self.ordering)
        total = max((pos + n * (saved[rank] - 1) + 1 for pos, rank in ranks if saved[rank] > 0), default=0)
        covered = np.zeros(total, dtype=bool)
        mappings: list[FileMapping] = []
        for pos, rank in enumerate(self.ordering):
            count = int(saved[rank])
            covered[pos : pos + n * count : n] = True
            for k in range((count + per_file - 1) // per_file):
                size = min(per_file, count - k * per_file)
                mappings.append(FileMapping(name(rank, k), pos + n * k * per_file, n, size))
        return total, mappings, np.flatnonzero(~covered).tolist()


class FrameTable:
    """Where each global frame went, learnt from the receivers' frame-index channel
    (dynamic dispatch): receiver and local index per global frame."""

    needs_frame_idx = True

    def __init__(self, nb_receivers: int, size_hint: int = 1024) -> None:
        self.receiver = np.full(max(16, size_hint), -1, dtype=np.int32)
        self.local = np.zeros(max(16, size_hint), dtype=np.int64)
        self.cursor = [0] * nb_receivers

    def learn(self, rank: int, frame_indices: npt.ArrayLike) -> None:
        idx = np.asarray(frame_indices, dtype=np.int64)
        if not len(idx):
            return
        top = int(idx.max())
        # A frame is located once its receiver is set: written last, so that a lookup
        # made from another thread (GetFrame) never sees a half-learnt frame.
        while top >= len(self.receiver):
            self.local = np.concatenate([self.local, np.zeros(len(self.local), dtype=np.int64)])
            self.receiver = np.concatenate([self.receiver, np.full(len(self.receiver), -1, dtype=np.int32)])
        self.local[idx] = self.cursor[rank] + np.arange(len(idx))
        self.receiver[idx] = rank
        self.cursor[rank] += len(idx)

    def locate(self, frame_idx: int) -> tuple[int, int]:
        if frame_idx < 0 or frame_idx >= len(self.receiver) or self.receiver[frame_idx] < 0:
            raise KeyError(frame_idx)
        return int(self.receiver[frame_idx]), int(self.local[frame_idx])

    def known_prefix(self) -> int:
        """Frames ``[0, n)`` all located."""
        missing = np.flatnonzero(self.receiver < 0)
        return int(missing[0]) if len(missing) else len(self.receiver)

    def frames_ready(self, counts: Sequence[int]) -> int:
        """Located frames ``[0, n)`` whose local index is below their receiver's count."""
        total = self.known_prefix()
        ranks, local = self.receiver[:total], self.local[:total]
        for rank, count in enumerate(counts):
            beyond = np.flatnonzero((ranks == rank) & (local >= count))
            if len(beyond):
                total = min(total, int(beyond[0]))
        return total

    def file_mappings(self, saved: Sequence[int], per_file: int, name: FileNamer) -> tuple[int, list[FileMapping]]:
        total = self.frames_ready(saved)
        ranks, local = self.receiver[:total], self.local[:total]
        mappings: list[FileMapping] = []
        for rank in range(len(saved)):
            mine = np.flatnonzero(ranks == rank)
            files = local[mine] // per_file
            for k in np.unique(files):
                idx = mine[files == k]
                mappings.append(FileMapping(name(rank, int(k)), int(idx[0]), 0, len(idx), idx.astype(np.int64)))
        return total, mappings

    def saved_mappings(
        self, saved: Sequence[int], per_file: int, name: FileNamer
    ) -> tuple[int, list[FileMapping], list[int]]:
        limit = np.array([int(s) for s in saved] + [0], dtype=np.int64)  # rank -1 (not learnt): nothing
        done = (self.receiver >= 0) & (self.local < limit[self.receiver])
        total = int(np.flatnonzero(done)[-1]) + 1 if done.any() else 0
        done, ranks, local = done[:total], self.receiver[:total], self.local[:total]
        mappings: list[FileMapping] = []
        for rank in range(len(saved)):
            mine = np.flatnonzero(done & (ranks == rank))
            files = local[mine] // per_file
            for k in np.unique(files):
                idx = mine[files == k]
                mappings.append(FileMapping(name(rank, int(k)), int(idx[0]), 0, len(idx), idx.astype(np.int64)))
        return total, mappings, np.flatnonzero(~done).tolist()


@dataclass(frozen=True)
class RoundRobin:
    """Frame ``i`` goes to receiver ``ordering[i % N]`` as its local frame ``i // N``."""

    ordering: tuple[int, ...]
    name = "round_robin"

    def __post_init__(self) -> None:
        if sorted(self.ordering) != list(range(len(self.ordering))):
            raise ParamError(
                f"round_robin_ordering {list(self.ordering)} is not a permutation of 0..{len(self.ordering) - 1}"
            )

    @property
    def nb_receivers(self) -> int:
        return len(self.ordering)

    def check_frames(self, nb_frames: int) -> None:
        return None

    def max_local_frames(self, nb_frames: int) -> int:
        """Most frames one receiver gets (0: endless)."""
        return -(-nb_frames // len(self.ordering))

    def new_run(self, nb_frames: int) -> Locator:
        return StaticLocator(self.ordering)


@dataclass(frozen=True)
class SingleReceiver(RoundRobin):
    """One receiver gets every frame."""

    ordering: tuple[int, ...] = (0,)
    name = "single"


@dataclass(frozen=True)
class DynamicDispatch:
    """Receivers get frames in no fixed order; positions come from the frame-index channel."""

    nb_receivers: int
    name = "dynamic"

    def check_frames(self, nb_frames: int) -> None:
        """Refuse at Prepare a frame table beyond its memory budget."""
        if nb_frames > MAX_DYNAMIC_FRAMES:
            raise ParamError(
                f"control params $.acq.nb_frames: {nb_frames} is more than the {MAX_DYNAMIC_FRAMES} frames "
                "a dynamic-dispatch frame table holds"
            )

    def max_local_frames(self, nb_frames: int) -> int:
        """Most frames one receiver gets (0: endless): any receiver may get every frame."""
        return nb_frames

    def new_run(self, nb_frames: int) -> Locator:
        return FrameTable(self.nb_receivers, min(nb_frames or 1024, 1 << 20))


Topology = RoundRobin | DynamicDispatch


def make_topology(name: str, nb_receivers: int, ordering: Sequence[int] | None = None) -> Topology:
    """Build a topology from the conductor's properties."""
    if nb_receivers < 1:
        raise ParamError("at least one receiver is needed")
    if name == "single":
        if nb_receivers != 1:
            raise ParamError(f"topology 'single' needs 1 receiver, not {nb_receivers}")
        return SingleReceiver()
    if name == "round_robin":
        order = tuple(ordering) if ordering else tuple(range(nb_receivers))
        if len(order) != nb_receivers:
            raise ParamError(f"round_robin_ordering has {len(order)} entries for {nb_receivers} receivers")
        return RoundRobin(order)
    if name == "dynamic":
        return DynamicDispatch(nb_receivers)
    raise ParamError(f"unknown topology {name!r} (allowed: single, round_robin, dynamic)")
