"""``LimaProcessingLegacy``: one device per acquisition, created by its receiver.

Named ``<domain>/limaprocessing/<uuid>@<rank>``; it serves the receiver's
:class:`~lima2_conductor.simulator.pipeline.LegacyPipeline` for that acquisition.
"""

from __future__ import annotations

import json

import tango
from tango import DevState, GreenMode
from tango.server import Device, attribute, command

from ..core.lima2 import FRAME_IDX_GETTER
from .base import raise_lima
from .pipeline import FrameNotAvailable, LegacyPipeline

PIPELINES: dict[str, LegacyPipeline] = {}
"""Pipelines of this server, by processing device name (lower case)."""


class LimaProcessingLegacy(Device):
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
