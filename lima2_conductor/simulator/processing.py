"""The processing devices: one per acquisition, created by its receiver.

Named ``<domain>/limaprocessing/<uuid>@<rank>``; each serves the receiver's pipeline for
that acquisition: ``LimaProcessingLegacy`` a
:class:`~lima2_conductor.simulator.pipeline.LegacyPipeline`, the other classes a
:class:`~lima2_conductor.simulator.pipelines.ClassPipeline` of their kind.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tango
from tango import DevState, GreenMode
from tango.server import Device, attribute, command

from ..core import lima2
from ..core.lima2 import FRAME_IDX_GETTER
from ..server.request_thread import RequestThreadHooks
from .base import raise_lima
from .pipeline import FrameNotAvailable, LegacyPipeline
from .pipelines import ClassPipeline

PIPELINES: dict[str, LegacyPipeline | ClassPipeline] = {}
"""Pipelines of this server, by processing device name (lower case)."""


class LimaProcessingLegacy(RequestThreadHooks, Device):
    """The Legacy pipeline of one receiver for one acquisition."""

    green_mode = GreenMode.Asyncio

    def init_device(self) -> None:  # sync: devices created at run time are not awaited
        self.pipeline = PIPELINES[self.get_name().lower()]
        self.set_data_ready_event("is_finished", True)
        self.set_data_ready_event("last_error", True)
        self.set_state(DevState.ON)

    def delete_device(self) -> None:
        PIPELINES.pop(self.get_name().lower(), None)

    @attribute(dtype=str, doc="Progress counters of this receiver's frames (JSON)")
    def progress_counters(self) -> str:
        return json.dumps(self.pipeline.progress_counters())

    @attribute(dtype=str, doc="Global index of the newest frame per source, -1 before the first (JSON)")
    def last_frames(self) -> str:
        return json.dumps(self.pipeline.last_frames())

    @attribute(dtype=str, doc="Input frame geometry (JSON)")
    def input_frame_info(self) -> str:
        return json.dumps(self.pipeline.geometry.info())

    @attribute(dtype=str, doc="Processed frame geometry (JSON)")
    def processed_frame_info(self) -> str:
        return json.dumps(self.pipeline.geometry.info())

    @attribute(dtype=bool, doc="True once the last frame is processed and saved")
    def is_finished(self) -> bool:
        return self.pipeline.finished

    @attribute(dtype=str, doc="Last pipeline error (JSON), empty if none")
    def last_error(self) -> str:
        return self.pipeline.error

    def _frame(self, frame_idx: int) -> tuple[str, bytes]:
        try:
            return self.pipeline.get_frame(int(frame_idx))
        except FrameNotAvailable as exc:
            raise_lima(str(exc), self.get_name(), "getFrame")

    @command(dtype_in=int, doc_in="Global frame index, -1 = newest", dtype_out=tango.DevEncoded)
    def getFrame(self, frame_idx: int) -> tuple[str, bytes]:
        return self._frame(frame_idx)

    @command(dtype_in=int, doc_in="Global frame index, -1 = newest", dtype_out=tango.DevEncoded)
    def getInputFrame(self, frame_idx: int) -> tuple[str, bytes]:
        return self._frame(frame_idx)

    @command(dtype_out=tango.DevEncoded, doc_out="ROI statistics rows since the last call")
    def popRoiStatistics(self) -> tuple[str, bytes]:
        return self.pipeline.pop_statistics()

    @command(dtype_out=tango.DevEncoded, doc_out="ROI profile rows since the last call")
    def popRoiProfiles(self) -> tuple[str, bytes]:
        return self.pipeline.pop_profiles()

    @command(dtype_out=tango.DevEncoded, doc_out="(recv_idx, frame_idx) rows since the last call")
    def popFrameIdx(self) -> tuple[str, bytes]:
        if not self.pipeline.frame_idx_enabled:
            raise_lima("frame_idx_enabled is false for this pipeline", self.get_name(), FRAME_IDX_GETTER)
        return self.pipeline.pop_frame_idx()


def frame_getter(spec: lima2.PipelineSpec, source: str) -> Any:
    """The getter command of ``spec``'s frame ``source`` (global index in, -1 = newest),
    named as the registry says."""

    def get(self: Any, frame_idx: int) -> tuple[str, bytes]:
        return self._get(source, frame_idx)

    get.__name__ = get.__qualname__ = spec.source(source).getter
    return command(get, dtype_in=int, doc_in="Global frame index, -1 = newest", dtype_out=tango.DevEncoded)


class _ClassProcessing(RequestThreadHooks, Device):
    """What every processing class other than Legacy serves: counters, newest frames,
    finished flag, last error and the two data-ready events."""

    green_mode = GreenMode.Asyncio
    pipeline: ClassPipeline

    def init_device(self) -> None:  # sync: devices created at run time are not awaited
        self.pipeline = PIPELINES[self.get_name().lower()]  # type: ignore[assignment]
        self.set_data_ready_event("is_finished", True)
        self.set_data_ready_event("last_error", True)
        self.set_state(DevState.ON)

    def delete_device(self) -> None:
        PIPELINES.pop(self.get_name().lower(), None)

    @attribute(dtype=str, doc="Progress counters of this receiver's frames (JSON)")
    def progress_counters(self) -> str:
        return json.dumps(self.pipeline.progress_counters())

    @attribute(dtype=str, doc="Global index of the newest frame per source, -1 before the first (JSON)")
    def last_frames(self) -> str:
        return json.dumps(self.pipeline.last_frames())

    @attribute(dtype=bool, doc="True once the last frame is processed and saved")
    def is_finished(self) -> bool:
        return self.pipeline.finished

    @attribute(dtype=str, doc="Last pipeline error (JSON), empty if none")
    def last_error(self) -> str:
        return self.pipeline.error

    def _get(self, source: str, frame_idx: int) -> tuple[str, bytes]:
        try:
            return self.pipeline.get(source, int(frame_idx))
        except FrameNotAvailable as exc:
            raise_lima(str(exc), self.get_name(), self.pipeline.spec.source(source).getter)

    def _pop(self, getter: str, dtype: np.dtype) -> tuple[str, bytes]:
        return self.pipeline.pop(getter, dtype)


class _WithRois(_ClassProcessing):
    """ROI statistics and profiles (rows only when the params enable them) and the
    frame-index channel of dynamic dispatch."""

    @command(dtype_out=tango.DevEncoded, doc_out="ROI statistics rows since the last call")
    def popRoiStatistics(self) -> tuple[str, bytes]:
        return self._pop(lima2.ROI_STATS_GETTER, lima2.STATS_DTYPE)

    @command(dtype_out=tango.DevEncoded, doc_out="ROI profile rows since the last call")
    def popRoiProfiles(self) -> tuple[str, bytes]:
        return self._pop(lima2.ROI_PROFILES_GETTER, lima2.STATS_DTYPE)

    @command(dtype_out=tango.DevEncoded, doc_out="(recv_idx, frame_idx) rows since the last call")
    def popFrameIdx(self) -> tuple[str, bytes]:
        if not self.pipeline.frame_idx_enabled:
            raise_lima("frame_idx_enabled is false for this pipeline", self.get_name(), FRAME_IDX_GETTER)
        return self._pop(FRAME_IDX_GETTER, lima2.FRAME_IDX_DTYPE)

    @attribute(dtype=str, doc="Processed frame geometry (JSON)")
    def processed_frame_info(self) -> str:
        return json.dumps(self.pipeline.info(lima2.PROCESSED_FRAME_INFO))


class LimaProcessingFailing(_ClassProcessing):
    """Counts frames; fails on prepare, on activate or at a frame, as its params say."""


class LimaProcessingSmx(_WithRois):
    """Serial crystallography: corrected frames, peaks, peak counters, accumulations."""

    getFrame = frame_getter(lima2.SMX, "frame")

    getSparseFrame = frame_getter(lima2.SMX, "sparse_frame")

    getAccCorrected = frame_getter(lima2.SMX, "acc_corrected")

    getAccPeaks = frame_getter(lima2.SMX, "acc_peaks")

    @command(dtype_out=tango.DevEncoded, doc_out="(frame_idx, recv_idx, nb_peaks) rows since the last call")
    def popPeakCounters(self) -> tuple[str, bytes]:
        return self._pop(lima2.PEAK_COUNTERS_GETTER, lima2.PEAK_COUNTER_DTYPE)


class LimaProcessingXpcs(_WithRois):
    """Coherence: input, processed, sparse and accumulated frames, fill factors."""

    getInputFrame = frame_getter(lima2.XPCS, "input_frame")

    getFrame = frame_getter(lima2.XPCS, "frame")

    getSparseFrame = frame_getter(lima2.XPCS, "sparse_frame")

    getAccumulatedFrame = frame_getter(lima2.XPCS, "accumulated_frame")

    @command(dtype_out=tango.DevEncoded, doc_out="(frame_idx, recv_idx, fill_factor) rows since the last call")
    def popFillFactors(self) -> tuple[str, bytes]:
        return self._pop(lima2.FILL_FACTORS_GETTER, lima2.FILL_FACTOR_DTYPE)

    @attribute(dtype=str, doc="Input frame geometry (JSON)")
    def input_frame_info(self) -> str:
        return json.dumps(self.pipeline.info(lima2.INPUT_FRAME_INFO))


class LimaProcessingFai(_WithRois):
    """Azimuthal integration: the frames and their azimuthal averages (vectors)."""

    getFrame = frame_getter(lima2.FAI, "frame")

    getFaiAverint = frame_getter(lima2.FAI, "fai_averint")

    @attribute(dtype=str, doc="Azimuthal average geometry (JSON {length, pixel_type})")
    def vector_info(self) -> str:
        return json.dumps(self.pipeline.info(lima2.VECTOR_INFO))


DEVICE_CLASSES: dict[str, type[Device]] = {
    cls.__name__: cls
    for cls in (LimaProcessingLegacy, LimaProcessingFailing, LimaProcessingSmx, LimaProcessingXpcs, LimaProcessingFai)
}
"""The processing device classes this simulator serves, by Lima2 class name."""
