"""The current run's master file, rewritten at checkpoints while the run goes on and
written at its end: if the conductor dies mid-run, the frames saved so far stay reachable.

Writes run in a thread (h5py). This module only writes: the system decides when, and
applies what a write says (the file's path, or a failure that turns the run FAULT).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .run import Run

logger = logging.getLogger(__name__)


class MasterWrites:
    """The master-file writes of the runs of one system, one at a time."""

    def __init__(self, checkpoint_s: float) -> None:
        self.checkpoint_s = checkpoint_s
        self._checkpoint: asyncio.Task[Any] | None = None
        self._checkpoint_at = 0.0
        self._checkpoint_saved: list[int] = []

    async def write(self, run: Run, gapped: bool = False) -> tuple[int, str, list[int]] | None:
        """Write the master file(s) of the frames ``run`` saved, once the checkpoint under
        way has ended: (frames, path, frames listed as missing), or ``None`` when the run
        saves nothing. ``gapped`` (a failed run): every saved frame, the gaps listed.
        Raises what the write raised."""
        if run.pipeline.saving is None:
            return None
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
            self._checkpoint = None
        saved = run.saved()
        if gapped:
            return await asyncio.to_thread(run.pipeline.write_gapped_master, saved)
        total, path = await asyncio.to_thread(run.pipeline.write_master, saved)
        return total, path, []

    def checkpoint(self, run: Run, now: float) -> None:
        """Rewrite the master file of a running ``run`` every ``checkpoint_s`` (in a thread)
        when its saved counts moved."""
        if run.pipeline.saving is None or run.ending:
            return
        if now - self._checkpoint_at < self.checkpoint_s:
            return
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        saved = run.saved()
        if saved == self._checkpoint_saved or not any(saved):
            return
        self._checkpoint_at = now
        self._checkpoint_saved = saved
        self._checkpoint = asyncio.ensure_future(asyncio.to_thread(run.pipeline.write_master, saved))
        self._checkpoint.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("master file checkpoint: %s", task.exception())
