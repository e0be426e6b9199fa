"""One run (acquisition) of the conductor: what was prepared, what was observed since, and
the pure decisions of run tracking (ended, failed, watchdog).

The system applies the decisions (stops devices, writes the master file, moves the run
state through the state machine). Work done for a run checks that the run is still the
current one before it changes anything: a run forgotten by Reset stays forgotten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .lima2 import DeviceState, PipelineSpec
from .pipeline import RunPipeline
from .ports import ProcessingPort
from .progress import Progress, RateMeter

BAD_STATES = (DeviceState.OFFLINE, DeviceState.FAULT, DeviceState.TERMINATE)
ENDED_STATES = (DeviceState.IDLE, DeviceState.STOPPED)


class Verdict(Enum):
    """What the observations of one tick say about the run."""

    GOING = "going"
    DEVICE_FAILED = "device_failed"
    ACQUISITION_ENDED = "acquisition_ended"
    ENDED = "ended"
    WATCHDOG = "watchdog"


@dataclass
class Run:
    """Everything the conductor knows about its current run."""

    uuid: str
    spec: PipelineSpec
    params: dict[str, Any]
    processing: list[ProcessingPort]
    pipeline: RunPipeline
    receivers: list[str]
    adopted: bool = False  # found running at start-up, not prepared by this conductor
    progress: Progress = field(default_factory=Progress)
    proc_finished: list[bool] = field(default_factory=list)
    stop_requested: bool = False
    ending: bool = False  # end-of-run work under way or done (attempted once)
    master_file: str = ""
    last_change: float = field(default_factory=time.monotonic)
    rate: RateMeter = field(default_factory=RateMeter)
    timings: dict[str, float] = field(default_factory=dict)
    started_at: float = 0.0  # wall-clock time of Start (epoch seconds)

    def __post_init__(self) -> None:
        if not self.proc_finished:
            self.proc_finished = [False] * len(self.processing)

    @property
    def nb_frames(self) -> int:
        return int(self.params["control"]["acq"]["nb_frames"])

    def per_receiver(self, counter: str) -> list[int]:
        return self.progress.per_receiver(counter, self.receivers)

    def saved(self) -> list[int]:
        return self.per_receiver(self.spec.saved_counter)

    def processed(self) -> list[int]:
        return self.per_receiver(self.spec.progress_counter)

    def frames_ready(self, progress: Progress) -> int:
        """The contiguous prefix of frames processed in ``progress``, as far as the
        pipeline knows where frames are (dynamic dispatch learns it from the reduced
        data: read the data first)."""
        processed = progress.per_receiver(self.spec.progress_counter, self.receivers)
        ready = self.pipeline.locator.frames_ready(processed)
        return min(ready, self.nb_frames) if self.nb_frames else ready

    def observe(self, progress: Progress, finished: list[bool], now: float) -> None:
        """Take a new progress snapshot; remember when anything last moved."""
        if progress.key() != self.progress.key():
            self.last_change = now
        self.progress = progress
        self.proc_finished = finished

    def verdict(
        self, states: dict[str, DeviceState], now: float, watchdog_s: float, waiting: bool, stopping: bool = False
    ) -> Verdict:
        """Decide from the device states and the processing flags.

        ``waiting``: the acquisition is known to have ended or been stopped (the watchdog
        applies only then: a long exposure is not a hang). ``stopping``: stopped with no
        command under way, so a device still PREPARED was never started and never will
        be (a Stop that came during the Start): it has ended, and so has its processing.
        """
        if any(s in BAD_STATES for s in states.values()):
            return Verdict.DEVICE_FAILED
        ended = (*ENDED_STATES, DeviceState.PREPARED) if stopping else ENDED_STATES
        acq_done = all(s in ended for s in states.values())
        never = [stopping and states.get(r) == DeviceState.PREPARED for r in self.receivers]
        finished = [f or n for f, n in zip(self.proc_finished, never, strict=False)]
        proc_done = all(finished) if self.processing else acq_done
        if acq_done and proc_done:
            return Verdict.ENDED
        if waiting and now - self.last_change > watchdog_s:
            return Verdict.WATCHDOG
        if acq_done:
            return Verdict.ACQUISITION_ENDED
        return Verdict.GOING

    def bad_devices(self, states: dict[str, DeviceState]) -> dict[str, DeviceState]:
        return {n: s for n, s in states.items() if s in BAD_STATES}
