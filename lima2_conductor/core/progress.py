"""Progress of a run: counters read from every device and aggregated across receivers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from .errors import ConductorError

logger = logging.getLogger(__name__)
T = TypeVar("T")


def aggregate(per_receiver: Sequence[tuple[str, Mapping[str, int]]]) -> dict[str, dict[str, Any]]:
    """``[(receiver, {counter: value})]`` -> ``{counter: {sum, min, max, per_receiver}}``.

    A counter missing on a receiver counts as 0 there.
    """
    names = sorted({k for _, counters in per_receiver for k in counters})
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        values = {rcv: int(counters.get(name, 0)) for rcv, counters in per_receiver}
        vals = list(values.values())
        out[name] = {"sum": sum(vals), "min": min(vals), "max": max(vals), "per_receiver": values}
    return out


class RateMeter:
    """Frames per second over a sliding window of samples."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self.samples: list[tuple[float, int]] = []

    def reset(self) -> None:
        self.samples.clear()

    def add(self, t: float, count: int) -> float:
        self.samples.append((t, count))
        while len(self.samples) > 2 and t - self.samples[0][0] > self.window_s:
            self.samples.pop(0)
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


@dataclass(frozen=True)
class Progress:
    """The counters of a run at one moment (immutable: readers never see half an update)."""

    nb_frames: int = 0
    nb_frames_acquired: int = 0
    nb_frames_xferred: int = 0
    nb_frames_processed: int = 0
    nb_frames_saved: int = 0
    nb_frames_ready: int = 0
    frame_rate: float = 0.0
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def key(self) -> tuple[int, ...]:
        return (self.nb_frames_acquired, self.nb_frames_xferred, self.nb_frames_processed, self.nb_frames_saved)

    def per_receiver(self, counter: str, receivers: Sequence[str]) -> list[int]:
        values = self.counters.get(counter, {}).get("per_receiver", {})
        return [int(values.get(r, 0)) for r in receivers]

    def with_counters(
        self,
        acquired: int,
        xferred: Mapping[str, int],
        counters: Sequence[tuple[str, Mapping[str, int]]],
        progress_counter: str,
        saved_counter: str,
    ) -> Progress:
        """A new snapshot from raw per-receiver values (``nb_frames_ready`` left as is)."""
        agg = aggregate(counters)
        agg.update(aggregate([(r, {"nb_frames_xferred": v}) for r, v in xferred.items()]))
        return replace(
            self,
            nb_frames_acquired=int(acquired),
            nb_frames_xferred=sum(int(v) for v in xferred.values()),
            nb_frames_processed=agg.get(progress_counter, {}).get("sum", 0),
            nb_frames_saved=agg.get(saved_counter, {}).get("sum", 0),
            counters=agg,
        )


async def read_or(coro: Awaitable[T], default: T, timeout: float) -> T:
    """A progress read with a deadline; the previous value when the device does not answer
    (liveness is the state poll's job, not this one's)."""
    try:
        return await asyncio.wait_for(coro, timeout)
    except (ConductorError, TimeoutError) as exc:
        logger.debug("progress read: %s", exc)
        return default
