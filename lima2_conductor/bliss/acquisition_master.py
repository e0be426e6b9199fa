"""The acquisition master of a scan: it drives the conductor's runs and fails the scan
with the conductor's reasons (the reduced-data slaves read what its runs make).

Step scans (software trigger): Prepare and Start once, one Trigger per point (sent
without waiting: its reply is collected while the frame is exposed, and a refused
Trigger fails the point), the next point released as soon as the conductor has acquired
the point's frame(s). A single point
(``ct``) is one internal-trigger run. A completed run is left DONE (no Stop); an aborted
scan Stops it; a failed run fails the scan with the conductor's reasons.
"""

from __future__ import annotations

import logging
from typing import Any

import tango
from bliss.common.greenlet_utils import KillMask
from bliss.scanning.chain import AcquisitionMaster

from ..core.lima2 import INTERNAL_TRIGGER, SOFTWARE_TRIGGER
from .channel import ConductorImageChannel
from .client import GONE, AcquisitionFailed, ConductorClient, Run, devfailed_text
from .frame_saving import FrameSavingMixin
from .image_feed import ImageFeed
from .params import FINISHED, control_params

logger = logging.getLogger(__name__)
ENDED = ("DONE", "STOPPED", "FAULT", GONE)
FAILED = ("FAULT", GONE)
PROGRESS = ("run_state", "nb_frames_acquired", "nb_frames_ready")


class ConductorAcquisitionMaster(FrameSavingMixin, AcquisitionMaster):
    """Drives one conductor run (or one run per point in internal trigger mode)."""

    def __init__(self, controller: Any, ctrl_params: dict[str, Any] | None = None, **acq_params: Any) -> None:
        self.acq_params = dict(acq_params)
        trigger_mode = self.acq_params["trigger_mode"]
        super().__init__(
            controller,
            name=controller.name,
            npoints=int(self.acq_params["nb_frames"]),
            trigger_type=AcquisitionMaster.SOFTWARE
            if trigger_mode in (INTERNAL_TRIGGER, SOFTWARE_TRIGGER)
            else AcquisitionMaster.HARDWARE,
            prepare_once=bool(self.acq_params["prepare_once"]),
            start_once=bool(self.acq_params["start_once"]),
            ctrl_params=ctrl_params,
        )
        self.det = controller.det
        self.client: ConductorClient = self.det.client
        self._point = -1
        self.run: Run | None = None
        self._prepared = False
        self._started = False
        self.ended = False
        self.run_state = ""
        self.uuid = ""
        self.master_file: tuple[str, str] | None = None
        self.master_files: list[tuple[str, str]] = []
        self._saving: dict[str, Any] = {"enabled": False}
        self.images = ImageFeed(self.channels)
        # one run per point (internal trigger in a step scan, as Bliss's Lima2 prepares
        # each point): each point saves under its own prefix, the frame stream counts on
        self.scan_points = int(self.acq_params.get("scan_npoints", 0))
        self.per_point = not self.prepare_once and self.scan_points != 1

    @staticmethod
    def get_param_validation_schema() -> dict[str, Any]:
        return {}

    @classmethod
    def validate_params(cls, acq_params: dict[str, Any], ctrl_params: dict[str, Any] | None = None) -> dict[str, Any]:
        return acq_params

    @property
    def trigger_mode(self) -> str:
        return str(self.acq_params["trigger_mode"])

    @property
    def frames_per_point(self) -> int:
        return int(self.acq_params.get("nb_frames_per_trigger", 1)) if self.prepare_once else self.npoints

    @property
    def run_frames(self) -> int:
        """Frames of the current run (0 = endless)."""
        return self.npoints

    def __iter__(self) -> Any:
        while True:
            self._point += 1
            if self.prepare_once and self.npoints > 0 and self._point * self.frames_per_point >= self.npoints:
                return
            yield self
            if self.parent is None:
                return

    # -- channels -----------------------------------------------------------------------
    def add_counter(self, counter: Any) -> None:
        if counter in self._counters:
            return
        self.channels.append(
            ConductorImageChannel(
                f"{self.name}:{counter.name}", self.client.proxy, counter.source, getattr(counter, "vector", False)
            )
        )
        self._counters[counter].append(self.channels[-1])

    # -- chain hooks ----------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        p = self.acq_params
        point = max(0, self._point)
        return {
            "control": control_params(
                p["nb_frames"], p["expo_time"], p["latency_time"], p["trigger_mode"], p.get("nb_frames_per_trigger", 1)
            ),
            "processing": self.det.processing.params(lambda source: self._point_saving(point, source)),
        }

    def prepare(self) -> None:
        if self._prepared and self.prepare_once:
            return
        self._close_run()  # the previous point's run (one run per point)
        self.ended = False
        self._started = False
        try:
            self.run = self.client.prepare(self._params())
        except tango.DevFailed as exc:
            raise AcquisitionFailed(f"{self.name}: Prepare failed: {devfailed_text(exc)}") from exc
        except BaseException:
            # Ctrl-C: Bliss kills the prepare tasks and calls no stop(); the Prepare still
            # under way in the conductor is cancelled, or its run released, here
            with KillMask(masked_kill_nb=1):
                self.client.undo_prepare()
            raise
        self.uuid = self.run.uuid
        self._prepared = True
        values = self.client.read_many(["master_files", "frame_channels"])
        masters = _json(values["master_files"])
        runs = self._run_master_files(masters)
        frames = _json(values["frame_channels"])
        keep_count = self.per_point and self._point > 0
        self.images.configure(self.uuid, masters, frames, runs, self.main_source, keep_count=keep_count)
        self.client.watcher.subscribe()
        self.run.refresh()
        self.det.last_run = {"uuid": self.uuid, "frames": self.run_frames, "trigger_mode": self.trigger_mode}

    def start(self) -> None:
        if self._started and self.start_once:
            if self.trigger_type == AcquisitionMaster.SOFTWARE and self.parent is None:
                self.trigger()
            return
        try:
            self.client.start()
        except tango.DevFailed as exc:
            raise self._failure("Start", exc) from exc
        self._started = True
        self.spawn_reading_task()

    def trigger(self) -> None:
        self.trigger_slaves()
        if self.trigger_mode == SOFTWARE_TRIGGER:
            assert self.run is not None
            try:
                self.run.trigger()
            except tango.DevFailed as exc:
                raise self._failure("Trigger", exc) from exc

    def _failure(self, command: str, exc: tango.DevFailed) -> AcquisitionFailed:
        """The scan's error when the conductor refused ``command`` of this run: the run's
        own reasons first, then the refusal's text."""
        cause = f"{command} refused by {self.client.name}: {devfailed_text(exc)}"
        return self.client.failure(self.name, self.run, cause)

    def wait_ready(self) -> None:
        """Release the next point once this point's frames are acquired (one run per
        point: once its run has ended)."""
        run = self.run
        if not self._started or run is None:
            return
        try:
            run.trigger_done()  # the point's Trigger was accepted
        except tango.DevFailed as exc:
            raise self._failure("Trigger", exc) from exc
        target = (self._point + 1) * self.frames_per_point if self.prepare_once else self.npoints
        if self.npoints > 0:
            target = min(target, self.npoints)

        def ready(v: dict[str, Any]) -> bool:
            if str(v.get("run_state")) in ENDED:
                return True
            # one run per point: the point is over when its run is (the next Prepare needs it)
            return self.prepare_once and int(v.get("nb_frames_acquired", 0)) >= target

        if not run.wait(ready, timeout=self._point_deadline(), needs=PROGRESS):
            v = run.values
            raise AcquisitionFailed(
                f"{self.name}: frame {target - 1} not acquired after {self._point_deadline():.0f} s "
                f"(run {v.get('run_state')}, {v.get('nb_frames_acquired')} frames acquired)"
            )
        if str(run.values.get("run_state")) in FAILED:
            raise self.client.failure(self.name, run)

    def _point_deadline(self) -> float | None:
        """How long a point may wait for its frames (None: hardware triggers, no limit)."""
        if self.trigger_mode not in (INTERNAL_TRIGGER, SOFTWARE_TRIGGER):
            return None
        frames = self.frames_per_point if self.prepare_once else self.npoints
        period = float(self.acq_params["expo_time"]) + float(self.acq_params["latency_time"])
        return 30.0 + 2 * period * max(1, frames)

    def reading(self) -> None:
        """Emit progress while the run lasts, and feed the image streams; at its end, fail
        the scan if it failed."""
        run = self.run
        assert run is not None
        last: dict[str, Any] = {}
        final = False
        self.images.restart()
        while True:
            v = dict(run.values)
            progress = {
                "run_state": str(v.get("run_state", "")),
                "nb_frames_acquired": int(v.get("nb_frames_acquired", 0)),
                "nb_frames_ready": int(v.get("nb_frames_ready", 0)),
            }
            if progress != last:
                self.emit_progress_signal(progress)
                last = progress
            state = progress["run_state"]
            offset = self._point * self.npoints if self.per_point else 0  # frames of the earlier points
            due = self.images.offer(progress["nb_frames_ready"], offset, state in ENDED)
            if state in ENDED and not final:
                run.refresh()  # the final counts, whatever the order events came in
                final = True
                continue
            if state in ENDED:
                break
            timeout = 0.5 if due is None else due
            run.wait(lambda values, seen=dict(v): _changed(values, seen), timeout=timeout, needs=PROGRESS)
        self.run_state = state
        self.ended = True
        self.det.last_run.update(run_state=state, frames_ready=progress["nb_frames_ready"])
        if state in FAILED:
            raise self.client.failure(self.name, run)

    def _close_run(self) -> None:
        """This scan is done with its run: the Trigger replies still pending are collected
        or cancelled (nothing of them reaches the next run or scan)."""
        if self.run is not None and not self.run.closed:
            for exc in self.run.close():
                logger.debug("%s: Trigger refused at the end of run %s: %s", self.name, self.uuid, devfailed_text(exc))

    def _release_prepared(self) -> None:
        """A run prepared but never started (the scan failed or was aborted before): Close
        it, so that the conductor is not left PREPARED."""
        assert self.run is not None
        try:
            values = self.client.read_many(["run_state", "acq_uuid"])
            if values["run_state"] == "PREPARED" and values["acq_uuid"] == self.run.uuid:
                self.client.close()
        except tango.DevFailed as exc:
            logger.warning("%s: Close failed: %s", self.name, devfailed_text(exc))

    def stop(self) -> None:
        """Stop a run that is still going (abort, or another device failed); a completed
        or failed run is left as it is."""
        self._close_run()
        try:
            self.client.undo_prepare()
        except tango.DevFailed as exc:
            logger.warning("%s: the interrupted Prepare could not be undone: %s", self.name, devfailed_text(exc))
        if self.ended or self.run is None:
            return
        if not self._started:
            self._release_prepared()
            return
        state = self.client.run_state()
        if state in FINISHED:
            return
        try:
            self.client.stop()
        except tango.DevFailed as exc:
            logger.warning("%s: Stop failed: %s", self.name, exc.args[0].desc)

    def get_acquisition_metadata(self, timing: Any = None) -> dict[str, Any] | None:
        meta = super().get_acquisition_metadata(timing=timing)
        if timing != self.META_TIMING.END:
            return meta
        meta = dict(meta or {})
        meta.update(
            {
                "acq_uuid": self.uuid,
                "tango_name": self.client.name,
                "run_state": self.run_state,
                "acq_params": self.client.last_params or self._params(),  # as sent, detector part included
            }
        )
        if self.master_file:
            meta["master_file"] = self.master_file[0]
            meta["master_dataset"] = self.master_file[1]
        if self.master_files:
            meta["master_files"] = [path for path, _ in self.master_files[: self._point + 1]]
        return meta


def _json(text: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _changed(values: dict[str, Any], seen: dict[str, Any]) -> bool:
    return any(values.get(k) != seen.get(k) for k in ("run_state", "nb_frames_acquired", "nb_frames_ready"))
