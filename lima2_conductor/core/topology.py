"""Frame dispatch across receivers: who has global frame ``i``, and how many are ready."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ParamError


@dataclass(frozen=True)
class SingleReceiver:
    name = "single"
    nb_receivers: int = 1

    def locate(self, frame_idx: int) -> tuple[int, int]:
        return 0, frame_idx

    def frames_ready(self, counts: Sequence[int]) -> int:
        return int(counts[0])


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

    def locate(self, frame_idx: int) -> tuple[int, int]:
        n = len(self.ordering)
        return self.ordering[frame_idx % n], frame_idx // n

    def frames_ready(self, counts: Sequence[int]) -> int:
        """Length of the prefix of global frames present on their receivers.

        Position ``p`` of the cycle holds frames ``p, p+N, ...``; with ``c`` of them on
        receiver ``ordering[p]``, the first missing one is ``c * N + p``.
        """
        n = len(self.ordering)
        return int(min(counts[self.ordering[p]] * n + p for p in range(n)))


@dataclass(frozen=True)
class DynamicDispatch:
    """Receivers get frames in no fixed order; positions come from the frame-index channel."""

    nb_receivers: int
    name = "dynamic"

    def locate(self, frame_idx: int) -> tuple[int, int]:
        raise NotImplementedError("dynamic dispatch locates frames through its lookup table")

    def frames_ready(self, counts: Sequence[int]) -> int:
        return 0


Topology = SingleReceiver | RoundRobin | DynamicDispatch


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


class FrameTable:
    """Where each global frame went, learnt from the receivers' frame-index channel
    (dynamic dispatch): receiver and local index per global frame."""

    def __init__(self, nb_receivers: int, size_hint: int = 1024) -> None:
        self.receiver = np.full(max(16, size_hint), -1, dtype=np.int32)
        self.local = np.zeros(max(16, size_hint), dtype=np.int64)
        self.cursor = [0] * nb_receivers

    def add(self, rank: int, frame_indices: Sequence[int]) -> None:
        """Receiver ``rank`` got these global frames, in its local order."""
        idx = np.asarray(frame_indices, dtype=np.int64)
        if not len(idx):
            return
        top = int(idx.max())
        while top >= len(self.receiver):
            self.receiver = np.concatenate([self.receiver, np.full(len(self.receiver), -1, dtype=np.int32)])
            self.local = np.concatenate([self.local, np.zeros(len(self.local), dtype=np.int64)])
        self.receiver[idx] = rank
        self.local[idx] = self.cursor[rank] + np.arange(len(idx))
        self.cursor[rank] += len(idx)

    def locate(self, frame_idx: int) -> tuple[int, int]:
        if frame_idx < 0 or frame_idx >= len(self.receiver) or self.receiver[frame_idx] < 0:
            raise KeyError(frame_idx)
        return int(self.receiver[frame_idx]), int(self.local[frame_idx])

    def known_prefix(self) -> int:
        """Frames ``[0, n)`` all located."""
        missing = np.flatnonzero(self.receiver < 0)
        return int(missing[0]) if len(missing) else len(self.receiver)
