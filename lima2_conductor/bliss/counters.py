"""Counters and counter controllers of the detector object.

``DetectorController`` (named after the detector) owns the image counters (one per frame
source of the processing plugin) and builds the acquisition master; the reduced-data
controllers are its sub-controllers (``roi_statistics``, ``roi_profiles``, ``others``),
their counters read from ``GetReducedData``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from bliss.common.counter import Counter
from bliss.common.protocols import HasMetadataForDataset, HasMetadataForScanExclusive
from bliss.controllers.counter import CounterController

from ..core.lima2 import (
    EXTERNAL_TRIGGER,
    GATE_TRIGGER,
    INTERNAL_TRIGGER,
    SOFTWARE_TRIGGER,
    STATS_DTYPE,
)
from .params import STATS, default_trigger_mode, frame_dtype, min_latency


class Detector(Protocol):
    """What the counters need of the detector controller
    (:class:`lima2_conductor.bliss.controller.Lima2`)."""

    name: str
    tango_name: str

    @property
    def acquisition(self) -> Any: ...

    def cached_value(self, name: str, default: Any = None) -> Any: ...

    def frame_pixel_type(self) -> str: ...

    def frame_info(self, source: str) -> dict[str, Any]: ...

    def capabilities(self) -> dict[str, Any]: ...

    def detector_description(self) -> str: ...


class FrameCounter(Counter):
    """Frames of one of the pipeline's frame sources (an image channel; data through
    blissdata). ``source`` is what ``GetFrame`` is asked (``sparse_frame:dense`` for a
    sparse source); a ``vector`` counter (FAI's radial curves) gives one curve per frame."""

    def __init__(self, name: str, controller: DetectorController, source: str = "", vector: bool = False) -> None:
        super().__init__(name, controller)
        self._det = controller.det
        self.source = source or name
        self.vector = vector

    @property
    def dtype(self) -> Any:
        info = self._det.frame_info(self.name)
        return frame_dtype(str(info.get("pixel_type") or self._det.frame_pixel_type()))

    @property
    def shape(self) -> tuple[int, ...]:
        shape = [int(v) for v in self._det.frame_info(self.name).get("shape") or []]
        if self.vector:
            return (shape[-1],) if shape else (0,)
        if len(shape) == 3:
            return tuple(shape[1:]) if shape[0] == 1 else tuple(shape)
        return (int(self._det.cached_value("det_height", 0)), int(self._det.cached_value("det_width", 0)))

    def __info__(self) -> str:
        if self.vector:
            return f"{self.fullname}: curve of {self.shape[0]} points {self.dtype}"
        return f"{self.fullname}: image {self.shape[-1]} x {self.shape[-2]} {self.dtype}"


class ReducedCounter(Counter):
    """One field of a reduced-data channel, one value per frame (SMX ``nb_peaks``, XPCS
    ``fill_factor``: channel 0, the field of the counter's name)."""

    channel_key: str | None = None
    row_length = 1

    def __init__(self, name: str, controller: CounterController, dtype: Any = np.int32) -> None:
        self.field = name
        super().__init__(name, controller, dtype=dtype)


class RoiStatCounter(ReducedCounter):
    """One statistic (sum, avg, std, min, max) of one ROI, per frame."""

    def __init__(self, roi: Any, stat: str, controller: CounterController) -> None:
        self.roi = roi
        self.stat = stat
        super().__init__(f"{roi.name}_{stat}", controller, dtype=np.float64 if stat == "sum" else np.float32)
        self.field = stat
        self.channel_key = roi.name

    def scan_metadata(self) -> dict[str, Any]:
        return {self.roi.name: self.roi.to_dict()}


class RoiProfileCounter(RoiStatCounter):
    """One statistic of a profile: one value per column (horizontal) or row (vertical)."""

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.roi.width if self.roi.mode == "horizontal" else self.roi.height,)

    @property
    def row_length(self) -> int:  # type: ignore[override]
        return int(self.shape[0])


class DetectorController(CounterController, HasMetadataForScanExclusive, HasMetadataForDataset):
    """Builds the acquisition master of the conductor for the default chain."""

    def __init__(self, det: Detector) -> None:
        super().__init__(det.name, register_counters=False)
        self.det = det

    def scan_metadata(self) -> dict[str, Any]:
        return {"type": "lima2", "description": self.det.detector_description(), "tango_name": self.det.tango_name}

    def dataset_metadata(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.det.detector_description()}

    def get_default_chain_parameters(self, scan_params: dict[str, Any], acq_params: dict[str, Any]) -> dict[str, Any]:
        """As Bliss's Lima2: a single point is one internal-trigger frame; a step scan is one
        acquisition of npoints frames, software-triggered once per point when possible."""
        settings = self.det.acquisition
        npoints = int(scan_params.get("npoints", 1))
        count_time = float(scan_params.get("count_time", 1.0))
        caps = self.det.capabilities()
        if "trigger_mode" in acq_params:
            trigger_mode = acq_params["trigger_mode"]
        elif settings.trigger_mode != "auto":
            trigger_mode = settings.trigger_mode
        elif npoints == 1:
            trigger_mode = INTERNAL_TRIGGER
        else:
            trigger_mode = default_trigger_mode(caps)
        prepare_once = trigger_mode in (SOFTWARE_TRIGGER, EXTERNAL_TRIGGER, GATE_TRIGGER)
        # one frame per point, as Bliss's Lima2 (several frames per trigger only when a
        # scan asks for them in its acq_params): the counters have one value per point
        per_trigger = int(acq_params.get("nb_frames_per_trigger", 1))
        nb_frames = acq_params.get("nb_frames")
        if nb_frames is None:
            nb_frames = npoints if prepare_once else 1
        expo_time = acq_params.get("expo_time", settings.expo_time)
        if expo_time is None:
            expo_time = count_time
        latency = max(float(acq_params.get("latency_time", settings.latency_time)), min_latency(caps))
        return {
            "nb_frames": int(nb_frames),
            "expo_time": float(expo_time),
            "latency_time": latency,
            "trigger_mode": trigger_mode,
            "nb_frames_per_trigger": per_trigger,
            "prepare_once": prepare_once,
            "start_once": prepare_once,
            "scan_npoints": npoints,
        }

    def get_acquisition_object(
        self, acq_params: dict[str, Any], ctrl_params: dict[str, Any], parent_acq_params: dict[str, Any]
    ) -> Any:
        from .acquisition_master import ConductorAcquisitionMaster

        return ConductorAcquisitionMaster(self, ctrl_params=ctrl_params, **acq_params)

    def get_current_parameters(self) -> dict[str, Any]:
        return {}

    def apply_parameters(self, ctrl_params: dict[str, Any]) -> None:
        pass


class ReducedDataController(CounterController):
    """Counters of one reduced-data source of the conductor (``roi_stats``,
    ``roi_profile``, ``nb_peaks``, ``fill_factor``), read with ``GetReducedData``."""

    source = "roi_stats"
    row_dtype: Any = STATS_DTYPE

    def __init__(self, name: str, master: DetectorController) -> None:
        super().__init__(name, master_controller=master, register_counters=False)
        self.master = master
        self.channel_of: dict[str, int] = {}

    def channel_index(self, counter: ReducedCounter) -> int:
        """The conductor's channel of ``counter`` (one per ROI; 0 for a scalar source)."""
        return self.channel_of.get(counter.channel_key, 0) if counter.channel_key else 0

    def get_default_chain_parameters(self, scan_params: dict[str, Any], acq_params: dict[str, Any]) -> dict[str, Any]:
        return {"npoints": acq_params.get("npoints", scan_params.get("npoints", 1))}

    def get_acquisition_object(
        self, acq_params: dict[str, Any], ctrl_params: dict[str, Any], parent_acq_params: dict[str, Any]
    ) -> Any:
        from .reduced_data_slave import ReducedDataAcquisitionSlave

        return ReducedDataAcquisitionSlave(
            self,
            npoints=parent_acq_params.get("nb_frames", acq_params.get("npoints", 1)),
            prepare_once=parent_acq_params.get("prepare_once", True),
            ctrl_params=ctrl_params,
        )

    def get_current_parameters(self) -> dict[str, Any]:
        return {}

    def apply_parameters(self, ctrl_params: dict[str, Any]) -> None:
        pass


class ScalarController(ReducedDataController):
    """One scalar per frame from a reduced-data source named as its field (``nb_peaks``,
    ``fill_factor``); under Bliss's Lima2 sub-controller name ``others``."""

    def __init__(self, name: str, master: DetectorController, source: str, row_dtype: Any) -> None:
        super().__init__(name, master)
        self.source = source
        self.row_dtype = row_dtype
        self.counter = ReducedCounter(source, self, dtype=row_dtype[source])


class RoiStatsController(ReducedDataController):
    source = "roi_stats"
    counter_class: type[RoiStatCounter] = RoiStatCounter

    def __init__(self, name: str, master: DetectorController) -> None:
        super().__init__(name, master)
        self._built: list[dict[str, Any]] | None = None

    def rebuild(self, rois: list[Any]) -> None:
        """One counter per ROI and statistic; ``channel_of`` maps a ROI name to the
        conductor's channel index."""
        key = [{**r.to_dict(), "name": r.name} for r in rois]
        if key == self._built:
            return
        self._counters.clear()
        self.channel_of = {}
        for index, roi in enumerate(rois):
            self.channel_of[roi.name] = index
            for stat in STATS:
                self.counter_class(roi, stat, self)
        self._built = key


class RoiProfilesController(RoiStatsController):
    source = "roi_profile"
    counter_class = RoiProfileCounter
