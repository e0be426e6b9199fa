"""``Claim``: one command's hold on the run state while it is under way."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Claim:
    """One command's hold on the run state while it is under way (PREPARING, STARTING,
    CLOSING, RESETTING). Only the command holding the system's current claim moves the
    run state on, and it compares its claim by identity before any write: a command that
    was cancelled or overtaken changes nothing, whenever it ends."""

    command: str
    task: asyncio.Task[Any] | None = None  # the work, when it can be cancelled (Prepare)
    cancelled: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set once its work has really ended

    def cancel(self) -> None:
        """Cancel the work once (its rollback then runs to its end)."""
        if not self.cancelled and self.task is not None and not self.task.done():
            self.cancelled = True
            self.task.cancel()
