"""Completing the master file of a failed run once its unreachable receivers answer again.

A receiver cut off by the network never gets the Stop: it goes on saving its share of the
frames to the shared disk. The master file written at the failure maps what the reachable
receivers saved (and what the unreachable ones had saved when last heard of), with the
frames nobody saved listed as missing, not silently cut. A :class:`Completion` then keeps
asking the unreachable receivers' processing devices for their saved counts; once every
one of them answers and has finished, the master file is rewritten (atomically: a
temporary file renamed) with every frame saved. This goes on whatever the system does
meanwhile (a new run included): the record holds what it needs of the failed run. A
receiver that never comes back leaves the master file as it was, its missing frames listed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConductorError

if TYPE_CHECKING:
    from .run import Run

logger = logging.getLogger(__name__)
PERIOD_S = 1.0
"""How often the unreachable receivers are asked again."""
MAX_RECORDS = 20
"""Completions kept (the oldest still waiting is abandoned beyond)."""


@dataclass
class Completion:
    """The master file of one failed run, waiting for its unreachable receivers."""

    run: Run
    waiting: list[int]  # ranks whose saved counts were not final at the failure
    saved: list[int]
    missing: list[int] = field(default_factory=list)
    state: str = "waiting"  # waiting | completed | abandoned
    since: float = field(default_factory=time.time)
    completed_at: float = 0.0
    frames_before: int = 0
    frames: int = 0

    @property
    def uuid(self) -> str:
        return self.run.uuid

    def info(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "state": self.state,
            "master_file": self.run.master_file,
            "waiting_for": [self.run.receivers[r] for r in self.waiting],
            "saved": list(self.saved),
            "frames_before": self.frames_before,
            "frames": self.frames,
            "missing": list(self.missing),
            "nb_missing": len(self.missing),
        }


Writer = Callable[["Run", list[int]], Any]
"""``write(run, saved) -> (total, path, missing)``, blocking (run in a thread)."""
Completed = Callable[["Run", int, str], None]
"""``completed(run, total, path)``: the system records a completed master file on its run."""


class Completions:
    """Every completion under way or done (shown by ``GetInfo``)."""

    def __init__(
        self,
        write: Writer,
        note: Callable[[str], None],
        completed: Completed,
        poll_timeout_s: float,
        period_s: float = PERIOD_S,
    ) -> None:
        self.write = write
        self.note = note
        self.completed = completed
        self.poll_timeout_s = poll_timeout_s
        self.period_s = period_s
        self.records: list[Completion] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def pending(self, uuid: str) -> bool:
        """A completion still needs this run's processing devices (do not erase them)."""
        return any(r.uuid == uuid and r.state == "waiting" for r in self.records)

    def add(self, run: Run, waiting: Sequence[int], missing: Sequence[int], frames: int) -> Completion:
        """Follow ``run``, whose receivers ``waiting`` could not be read at its failure."""
        record = Completion(run, list(waiting), run.saved(), list(missing), frames_before=frames, frames=frames)
        self.records.append(record)
        names = ", ".join(run.receivers[r] for r in waiting)
        self.note(
            f"master file {run.master_file} of failed run {run.uuid}: {frames} frames, {len(missing)} missing; "
            f"to be completed when {names} answer{'s' if len(waiting) == 1 else ''} again"
        )
        self._tasks[run.uuid] = asyncio.ensure_future(self._follow(record))
        while len(self.records) > MAX_RECORDS:
            self._abandon(self.records.pop(0))
        return record

    def _abandon(self, record: Completion) -> None:
        task = self._tasks.pop(record.uuid, None)
        if task is not None:
            task.cancel()
        if record.state == "waiting":
            record.state = "abandoned"

    def close(self) -> None:
        """No more completions (Init, shutdown): the master files stay as they are."""
        for record in self.records:
            self._abandon(record)

    async def _follow(self, record: Completion) -> None:
        try:
            while record.state == "waiting":
                await asyncio.sleep(self.period_s)
                if await self._poll(record):
                    await self._complete(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the master file stays as it was
            record.state = "abandoned"
            self.note(f"master file of run {record.uuid} cannot be completed: {exc}")
            logger.error("completion of %s: %r", record.uuid, exc)
        finally:
            self._tasks.pop(record.uuid, None)

    async def _poll(self, record: Completion) -> bool:
        """Ask every waiting receiver's processing device; True once all answered finished."""
        run = record.run

        async def one(rank: int) -> tuple[int, bool] | None:
            try:
                counters, finished = await asyncio.wait_for(run.processing[rank].progress(), self.poll_timeout_s)
            except (ConductorError, TimeoutError):
                return None
            return int(counters.get(run.spec.saved_counter, record.saved[rank])), bool(finished)

        replies = await asyncio.gather(*(one(rank) for rank in record.waiting))
        for rank, reply in zip(record.waiting, replies, strict=True):
            if reply is not None:
                record.saved[rank] = max(record.saved[rank], reply[0])
        return all(reply is not None and reply[1] for reply in replies)

    async def _complete(self, record: Completion) -> None:
        total, path, missing = await asyncio.to_thread(self.write, record.run, list(record.saved))
        self.completed(record.run, total, path)  # the system records it on the run
        record.frames, record.missing = total, list(missing)
        record.state = "completed"
        record.completed_at = time.time()
        message = (
            f"master file completed: {path} of run {record.uuid} now maps {total} frames "
            f"(was {record.frames_before}), {len(missing)} never saved"
        )
        logger.warning(message)
        self.note(message)


def write_gapped(run: Run, saved: list[int]) -> tuple[int, str, list[int]]:
    """The master file of ``run`` with every frame of ``saved`` (blocking: in a worker,
    which leaves the run alone)."""
    return run.pipeline.write_gapped_master(saved)
