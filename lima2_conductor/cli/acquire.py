"""One acquisition on a conductor proxy, watched to its end: the client helper behind the
demo, the shell's ``run_acquisition`` and any script."""

from __future__ import annotations

import json
import time
from typing import Any

from .progress_display import ProgressDisplay, Snapshot

__all__ = ["run_acquisition"]

_COUNTERS = ("nb_frames_xferred", "nb_frames_processed", "nb_frames_saved", "frame_rate")


def _snapshot(conductor: Any, nb_frames: int) -> Snapshot | None:
    """The counters now, None if a read failed (e.g. interrupted by a signal)."""
    values = [a.value for a in conductor.read_attributes(list(_COUNTERS))]
    if any(v is None for v in values):
        return None
    xferred, processed, saved, rate = values
    return Snapshot(int(xferred), int(processed), int(saved), nb_frames, float(rate))


def _wait_stopped(conductor: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while conductor.running and time.monotonic() < deadline:
        time.sleep(0.05)


def run_acquisition(
    conductor: Any,
    nb_frames: int,
    expo_time: float,
    latency_time: float = 0.0,
    params: dict[str, Any] | None = None,
    timeout: float | None = None,
    progress: bool | ProgressDisplay = True,
) -> dict[str, Any]:
    """Prepare and start an acquisition on a conductor proxy, wait for its end.

    ``nb_frames = 0`` is an endless run: it has no deadline and runs until Ctrl+C
    (``KeyboardInterrupt``), which stops it. Otherwise the run is stopped and
    ``TimeoutError`` raised after ``timeout`` s (default: three times the nominal
    duration plus 30 s). ``progress``: ``True`` shows it on stdout (a bar on a terminal,
    plain lines otherwise), or a :class:`~lima2_conductor.cli.progress_display.ProgressDisplay`. Returns a summary dict
    (``interrupted`` is true when Ctrl+C stopped the run).
    """
    display = progress if isinstance(progress, ProgressDisplay) else (ProgressDisplay() if progress else None)
    conductor.acq_nb_frames = nb_frames
    conductor.acq_expo_time = expo_time
    conductor.acq_latency_time = latency_time
    uid = conductor.Prepare(json.dumps(params or {}))
    t0 = time.monotonic()
    conductor.Start()
    if timeout is None and nb_frames > 0:
        timeout = 30 + 3 * nb_frames * (expo_time + latency_time)
    deadline = None if timeout is None else t0 + timeout
    interrupted = False
    try:
        while conductor.running:
            snapshot = _snapshot(conductor, nb_frames) if display is not None else None
            if display is not None and snapshot is not None:
                display.update(snapshot)
            if deadline is not None and time.monotonic() > deadline:
                conductor.Stop()
                raise TimeoutError(f"acquisition {uid} did not end in {timeout:.0f} s")
            time.sleep(0.05)
    except KeyboardInterrupt:
        interrupted = True
        if display is not None and display.tty:
            print()
        print("Ctrl+C: stopping the acquisition")
        conductor.Stop()
        _wait_stopped(conductor, 30.0)
    wall = time.monotonic() - t0
    final = _snapshot(conductor, nb_frames) if display is not None else None
    if display is not None and final is not None:
        display.finish(final)
    counters = json.loads(conductor.progress_counters)
    xferred = int(conductor.nb_frames_xferred)
    return {
        "uuid": uid,
        "run_state": conductor.run_state,
        "interrupted": interrupted,
        "nb_frames_xferred": xferred,
        "nb_frames_processed": conductor.nb_frames_processed,
        "nb_frames_saved": conductor.nb_frames_saved,
        "wall_time_s": wall,
        "floor_s": (nb_frames or xferred) * (expo_time + latency_time),
        "per_receiver": counters.get("nb_frames_xferred", {}).get("per_receiver", {}),
        "errors": list(conductor.errors or []),
    }
