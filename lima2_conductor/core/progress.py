"""Progress counters aggregated across receivers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


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
