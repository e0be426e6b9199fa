"""Feeding the scan's image streams: each Prepare describes the run to the image channels,
and while it lasts they are told how many frames are ready.

They are told at most every ``IMAGE_PERIOD_S`` (as Bliss's Lima2 polls) and at the run's
end: not one Redis write per stream per point.
"""

from __future__ import annotations

import time
from typing import Any

from .channel import ConductorImageChannel

IMAGE_PERIOD_S = 0.02
"""How often, at most, the image streams are told of new frames while a run lasts."""


class ImageFeed:
    """The image channels of one acquisition master (one per frame counter in the scan)."""

    def __init__(self, channels: list[ConductorImageChannel]) -> None:
        self.channels = channels  # the master's own list: counters are added after this
        self._published = -1  # frames the channels were told of
        self._published_at = 0.0

    def configure(
        self,
        uuid: str,
        masters: dict[str, Any],
        frames: dict[str, Any],
        runs: dict[str, Any] | None,
        main: str,
        keep_count: bool,
    ) -> None:
        """Describe the run just prepared: its uuid, each source's frames and master file.
        ``runs`` (one run per point) names the points' master files for ``main`` only;
        ``keep_count``: this run's frames follow those of the earlier points."""
        for channel in self.channels:
            name = channel.short_name
            # a sparse source's master file holds no frames dataset: read through GetFrame
            master = tuple(masters[name]) if name in masters and (channel.source == name or channel.vector) else None
            channel_runs = runs if name == main or runs is None else {**runs, "master_files": None}
            channel.configure(uuid, frames.get(name, {}), master, channel_runs, keep_count=keep_count)

    def restart(self) -> None:
        """A run starts being followed: nothing of it published yet."""
        self._published, self._published_at = -1, 0.0

    def offer(self, ready: int, offset: int, ended: bool) -> float | None:
        """``ready`` frames of the run are ready (``offset``: those of the earlier points):
        tell the channels if it is time or the run has ended. Returns how long until they
        may be told, if they are still behind (None if they are not)."""
        if ready == self._published:
            return None
        now = time.monotonic()
        if ended or now - self._published_at >= IMAGE_PERIOD_S:
            for channel in self.channels:
                channel.emit_progress(offset + ready)
            self._published, self._published_at = ready, now
            return None
        return max(0.0, IMAGE_PERIOD_S - (now - self._published_at))
