"""``ConductorView``: a frozen snapshot of the conductor, what the Tango device serves.

Made by the system once per monitor tick (and after each command) and handed to the
device, so that every read of an attribute returns a value at once, never a fan-out, and
two reads in one tick agree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .detector import DetectorCache
from .lima2 import DeviceState
from .progress import Progress
from .run import Run
from .state import RunState, SystemState, tango_state_name


@dataclass(frozen=True)
class ConductorView:
    system_state: SystemState = SystemState.UNKNOWN
    run_state: RunState = RunState.IDLE
    tango_state: str = "UNKNOWN"
    status: str = ""
    uuid: str = ""
    running: bool = False
    failed: bool = False
    errors: tuple[str, ...] = ()
    device_states: dict[str, str] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)
    processing_class: str = ""
    frame_channels: dict[str, Any] = field(default_factory=dict)
    reduced_data_channels: dict[str, Any] = field(default_factory=dict)
    reduced_data_ready: int = 0
    master_files: dict[str, list[str]] = field(default_factory=dict)
    master_file: str = ""
    pixel_type: str = ""
    adopted: bool = False
    frames_saved_ready: int = 0  # contiguous prefix of saved frames (global order)
    detector: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: float = 0.0
    receivers: tuple[str, ...] = ()
    topology: str = ""
    observed: bool = False  # the devices were read at least once

    @property
    def last_error(self) -> str:
        return self.errors[-1] if self.errors else ""

    def device_states_json(self) -> str:
        return json.dumps(self.device_states)


def status_text(
    system_state: SystemState, run_state: RunState, uuid: str, states: dict[str, DeviceState], errors: list[str]
) -> str:
    """``Status`` in words: the system and run, offline and faulty devices, the first error."""
    lines = [f"System {system_state.name}, run {run_state.value}" + (f" ({uuid})" if uuid else "")]
    offline = [n for n, st in states.items() if st == DeviceState.OFFLINE]
    if offline:
        lines.append("Offline: " + ", ".join(offline))
    odd = [f"{n} {st.name}" for n, st in states.items() if st in (DeviceState.FAULT, DeviceState.TERMINATE)]
    if odd:
        lines.append("Faulty: " + ", ".join(odd))
    if errors:
        lines.append(f"First error: {errors[0]}")
        if len(errors) > 1:
            lines.append(f"Last error: {errors[-1]}")
    return "\n".join(lines)


def snapshot(
    run_state: RunState,
    run: Run | None,
    states: dict[str, DeviceState],
    errors: Sequence[str],
    detector: DetectorCache,
    receivers: Sequence[str],
    topology: str,
    observed: bool,
) -> ConductorView:
    """The view of a system whose run is ``run`` (``None``: none) in ``run_state``."""
    pipe = run.pipeline if run else None
    sys_state = SystemState.from_device_states(list(states.values()))
    uuid = run.uuid if run else ""
    frames = pipe.frame_sources() if pipe else {}
    pixel = frames.get("frame", {}).get("pixel_type", "") or detector.pixel_type()
    return ConductorView(
        system_state=sys_state,
        run_state=run_state,
        tango_state=tango_state_name(sys_state, run_state),
        status=status_text(sys_state, run_state, uuid, states, list(errors)),
        uuid=uuid,
        running=run_state.active,
        failed=run_state == RunState.FAULT,
        errors=tuple(errors),
        device_states={n: st.name for n, st in states.items()},
        progress=run.progress if run else Progress(),
        processing_class=run.spec.class_name if run else "",
        frame_channels=frames,
        reduced_data_channels=pipe.channels() if pipe else {},
        reduced_data_ready=pipe.reduced_ready() if pipe else 0,
        master_files=pipe.master_files() if pipe else {},
        master_file=run.master_file if run else "",
        pixel_type=pixel,
        adopted=bool(run and run.adopted),
        frames_saved_ready=pipe.locator.frames_ready(run.saved()) if run and pipe and pipe.saving else 0,
        detector=dict(detector.values),
        started_at=run.started_at if run else 0.0,
        receivers=tuple(receivers),
        topology=topology,
        observed=observed,
    )
