"""The scan's image channels: each publishes how many frames of its source the run has
made available (images, or FAI's radial curves: one vector per frame)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tango
from bliss.scanning.channel import BaseAcquisitionChannel

from ..core.lima2 import DEFAULT_PIXEL_TYPE
from .params import frame_dtype
from .stream import ConductorStream


def tango_url(proxy: tango.DeviceProxy) -> str:
    """A full Tango name that works in any process (``tango://host:port/a/b/c``)."""
    name = proxy.dev_name()
    try:
        return f"tango://{proxy.get_db_host()}:{proxy.get_db_port()}/{name}"
    except tango.DevFailed:
        return name


class ConductorImageChannel(BaseAcquisitionChannel):
    def __init__(self, name: str, proxy: tango.DeviceProxy, source: str, vector: bool = False) -> None:
        super().__init__(name)
        self.source = source
        self.vector = vector
        self._url = tango_url(proxy)
        self._uuid = ""
        self._shape: tuple[int, ...] = (0, 0)
        self._dtype: Any = np.uint16
        self._master_file: tuple[str, str] | None = None
        self._runs: dict[str, Any] | None = None
        self._last = -1

    def configure(
        self,
        uuid: str,
        frame_info: dict[str, Any],
        master_file: tuple[str, str] | None,
        runs: dict[str, Any] | None = None,
        keep_count: bool = False,
    ) -> None:
        """After Prepare: the run's uuid, frame shape and type, master file; ``runs`` when
        the scan is one run per point (the stream counts the frames of every point, and
        ``keep_count``: this run's frames follow those already published)."""
        if not keep_count:
            self._uuid = uuid
            self._master_file = master_file
            self._runs = runs
            self._last = -1
        shape = [int(v) for v in frame_info.get("shape", [1, 0, 0])]
        if self.vector:
            self._shape = (shape[-1],)
        else:
            self._shape = tuple(shape[1:]) if shape and shape[0] == 1 else tuple(shape)
        self._dtype = frame_dtype(str(frame_info.get("pixel_type", DEFAULT_PIXEL_TYPE)))

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> Any:
        return self._dtype

    def stream_definition(self) -> Any:
        if not self._uuid:
            raise RuntimeError(f"{self.name}: the run is not prepared yet")
        return ConductorStream.make_definition(
            self.fullname, self._url, self.source, self._uuid, self._master_file, self._dtype, self._shape, self._runs
        )

    def emit_progress(self, nb_frames: int) -> None:
        """Publish the number of frames available (only when it grows)."""
        if nb_frames > self._last and self.stream is not None:
            self._last = nb_frames
            self.emit(np.uint32(nb_frames))
