"""Progress of an acquisition on a terminal (a bar redrawn in place) or in a log
(plain lines at a fixed period)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Snapshot:
    """The counters shown: frames transferred, processed and saved, requested (0 = endless)."""

    xferred: int
    processed: int
    saved: int
    nb_frames: int
    rate_hz: float = 0.0


def bar(done: int, total: int, width: int = 30) -> str:
    """``[#####-----]`` for ``done`` of ``total`` (an empty bar when ``total`` is 0)."""
    frac = min(1.0, done / total) if total > 0 else 0.0
    full = int(frac * width)
    return "[" + "#" * full + "-" * (width - full) + "]"


def describe(s: Snapshot) -> str:
    """One line of counters, without the bar."""
    of = f"/{s.nb_frames}" if s.nb_frames > 0 else ""
    endless = "" if s.nb_frames > 0 else " (endless run: Ctrl+C stops it)"
    rate = f", {s.rate_hz:.1f} Hz" if s.rate_hz > 0 else ""
    return f"{s.xferred}{of} frames transferred, {s.processed} processed, {s.saved} saved{rate}{endless}"


@dataclass
class ProgressDisplay:
    """Shows snapshots on ``out``: a bar on a terminal, a line every ``period_s`` otherwise."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    period_s: float = 1.0
    tty: bool | None = None
    _last_line_at: float = field(default=float("-inf"), init=False)
    _width: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.tty is None:
            isatty = getattr(self.out, "isatty", None)
            self.tty = bool(isatty and isatty())

    def update(self, s: Snapshot) -> None:
        if self.tty:
            text = f"{bar(s.xferred, s.nb_frames) + ' ' if s.nb_frames > 0 else ''}{describe(s)}"
            self.out.write("\r" + text.ljust(self._width))
            self._width = len(text)
            self.out.flush()
            return
        now = time.monotonic()
        if now - self._last_line_at >= self.period_s:
            self._last_line_at = now
            self.out.write(f"progress: {describe(s)}\n")
            self.out.flush()

    def finish(self, s: Snapshot) -> None:
        """The final counters, always shown; ends the bar's line."""
        if self.tty:
            self.update(s)
            self.out.write("\n")
        else:
            self.out.write(f"progress: {describe(s)}\n")
        self.out.flush()
