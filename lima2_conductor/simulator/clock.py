"""When frames exist: the detector's clock (pure, with an injectable time source)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ..core.lima2 import SOFTWARE_TRIGGER


class FrameClock:
    """Frames produced since ``start``.

    ``internal``, ``external`` and ``gate`` modes produce one frame every
    ``expo_time + latency_time`` (external triggers are simulated at that rate);
    ``software`` mode produces ``nb_frames_per_trigger`` frames per ``trigger()``, one
    per period. ``nb_frames == 0`` means endless.
    """

    def __init__(self, acq_params: dict[str, Any], now: Callable[[], float] = time.monotonic) -> None:
        acq = acq_params["acq"]
        self.period = max(1e-6, (acq["expo_time"] + acq["latency_time"]) * 1e-6)
        self.nb_frames = acq["nb_frames"]
        self.mode = acq["trigger_mode"]
        self.per_trigger = acq["nb_frames_per_trigger"]
        self.now = now
        self.t0: float | None = None
        self.triggers: list[float] = []
        self.frozen: int | None = None

    @property
    def software(self) -> bool:
        return self.mode == SOFTWARE_TRIGGER

    def start(self) -> None:
        self.t0 = self.now()

    def stop(self) -> None:
        """Freeze the count (Stop, Reset or the end of the acquisition)."""
        if self.frozen is None:
            self.frozen = self.produced()

    def trigger(self) -> None:
        self.triggers.append(self.now())

    def _cap(self, n: int) -> int:
        return n if self.nb_frames == 0 else min(n, self.nb_frames)

    def produced(self) -> int:
        """Number of frames produced so far."""
        if self.frozen is not None:
            return self.frozen
        if self.t0 is None:
            return 0
        now = self.now()
        if self.software:
            n = sum(min(self.per_trigger, int((now - t) / self.period)) for t in self.triggers)
        else:
            n = int((now - self.t0) / self.period)
        return self._cap(n)

    def complete(self) -> bool:
        return self.nb_frames > 0 and self.produced() >= self.nb_frames

    def next_frame_in(self) -> float:
        """Seconds until the next frame could appear (for sleeping)."""
        if self.t0 is None:
            return self.period
        elapsed = self.now() - self.t0
        return max(0.0, (math.floor(elapsed / self.period) + 1) * self.period - elapsed)
