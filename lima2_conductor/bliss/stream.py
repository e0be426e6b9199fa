"""blissdata stream plugin ``lima2_conductor``: frames of a conductor run.

The scan's image channel publishes only "N frames available" events; this plugin turns
indices into frames: ``GetFrame`` on the conductor while the run lasts, the master file
once the stream is sealed and the file written, ``-1`` for the newest frame. Registered
in the ``blissdata`` entry-point group; needs blissdata and PyTango, not Bliss.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import tango
from blissdata.exceptions import EmptyViewException, IndexNoMoreThereError, IndexNotYetThereError
from blissdata.lima.image_utils import ImageData
from blissdata.streams import BaseStream, BaseView, EventRange, StreamDefinition
from blissdata.streams.default import Stream
from blissdata.streams.encoding.numeric import NumericStreamEncoder
from blissdata.streams.event_stream import EventStream
from blissdata.streams.lima.stream import LimaDirectAccess

from ..core.devencoded import decode_frame

logger = logging.getLogger(__name__)
PLUGIN = "lima2_conductor"
PROTOCOL_VERSION = 1
RUNS_PROTOCOL_VERSION = 2
"""Streams of scans made of one run per point (``info["runs"]``)."""


class FrameSource:
    """Frames of one run of one conductor: by ``GetFrame``, or from the master file.

    With ``runs`` (one run per scan point, ``frames_per_run`` frames each), frame ``i`` is
    frame ``i % frames_per_run`` of point ``i // frames_per_run``: read from that point's
    master file when saved; by ``GetFrame`` only the newest frame (``-1``), since the
    conductor holds only the current point's run.
    """

    def __init__(
        self,
        tango_url: str,
        source: str,
        master_file: Sequence[str] | None,
        runs: dict[str, Any] | None = None,
        shape: Sequence[int] = (),
    ) -> None:
        self.tango_url = tango_url
        self.shape = tuple(int(v) for v in shape)
        self.source = source
        self.master_file = tuple(master_file) if master_file else None
        self.frames_per_run = int(runs["frames_per_run"]) if runs else 0
        self.run_files = [tuple(m) for m in (runs or {}).get("master_files") or []]
        self._proxy: tango.DeviceProxy | None = None

    @property
    def proxy(self) -> tango.DeviceProxy:
        if self._proxy is None:
            self._proxy = tango.DeviceProxy(self.tango_url)
        return self._proxy

    def live(self, frame_idx: int) -> tuple[np.ndarray, int]:
        """Frame ``frame_idx`` (-1: the newest) from the conductor, as (height, width)."""
        try:
            raw = self.proxy.GetFrame([[frame_idx], [self.source]])
        except tango.DevFailed as exc:
            raise IndexNoMoreThereError(f"frame {frame_idx} of {self.tango_url}: {exc.args[0].desc}") from None
        frame, idx = decode_frame((raw[0], bytes(raw[1])))
        return self._shaped(frame), int(idx)

    def _shaped(self, frame: np.ndarray) -> np.ndarray:
        """One frame in the stream's shape: ``(height, width)`` for a one-channel image,
        ``(length,)`` for a curve (the conductor sends both as 3-D arrays)."""
        if self.shape and frame.size == int(np.prod(self.shape)):
            return frame.reshape(self.shape)
        return frame[0] if frame.shape[0] == 1 else frame

    def newest(self, ready: int) -> tuple[np.ndarray, int]:
        """The newest frame: ``GetFrame(-1)``; if the conductor's newest is not processed
        yet, the newest of the ``ready`` frames the stream announced."""
        try:
            return self.live(-1)
        except IndexNoMoreThereError:
            if ready <= 0:
                raise IndexNotYetThereError("no frame yet") from None
            if self.frames_per_run:
                return self.frames(ready - 1, ready, 1, True)[0], ready - 1
            return self.live(ready - 1)

    def from_file(self, start: int, stop: int, step: int) -> np.ndarray:
        import h5py

        assert self.master_file is not None
        path, dataset = self.master_file
        with h5py.File(path, "r") as f:
            return np.asarray([self._shaped(np.asarray(a)) for a in f[dataset][start:stop:step]])

    def frames(self, start: int, stop: int, step: int, sealed: bool) -> np.ndarray:
        if self.frames_per_run:
            return np.asarray([self._run_frame(i) for i in range(start, stop, step)])
        if sealed and self.master_file is not None:
            try:
                return self.from_file(start, stop, step)
            except OSError as exc:
                logger.debug("master file not readable (%s): frames from the conductor", exc)
        return np.asarray([self.live(i)[0] for i in range(start, stop, step)])

    def _run_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` of a one-run-per-point scan, from its point's master file."""
        import h5py

        point, local = divmod(index, self.frames_per_run)
        if point >= len(self.run_files):
            raise IndexNoMoreThereError(
                f"frame {index}: point {point}'s run is not saved, the conductor no longer has it"
            )
        path, dataset = self.run_files[point]
        try:
            with h5py.File(path, "r") as f:
                return self._shaped(np.asarray(f[dataset][local]))
        except (OSError, KeyError) as exc:
            raise IndexNoMoreThereError(f"frame {index}: {path}::{dataset} not readable ({exc})") from None


class ConductorView(BaseView):
    def __init__(self, frames: FrameSource, start: int, stop: int, sealed: bool) -> None:
        self._frames = frames
        self._range = range(start, stop)
        self._sealed = sealed

    @property
    def index(self) -> int:
        return self._range.start

    def __len__(self) -> int:
        return len(self._range)

    def get_data(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        r = self._range[start:stop]
        return self._frames.frames(r.start, r.stop, 1, self._sealed)


class ConductorStream(BaseStream, LimaDirectAccess):
    """Frames of a conductor run; the events hold the number of frames available."""

    def __init__(self, event_stream: EventStream) -> None:
        BaseStream.__init__(self, event_stream)
        info = event_stream.info
        if info.get("protocol_version") not in (PROTOCOL_VERSION, RUNS_PROTOCOL_VERSION):
            raise RuntimeError(
                f"{PLUGIN} stream protocol {info.get('protocol_version')} "
                f"(expected {PROTOCOL_VERSION} or {RUNS_PROTOCOL_VERSION})"
            )
        self._dtype = np.dtype(info["dtype"])
        self._shape = tuple(info["shape"])
        self.acq_uuid = str(info["acq_uuid"])
        self.frame_source = FrameSource(
            str(info["tango_url"]), str(info["source"]), info.get("master_file"), info.get("runs"), self._shape
        )
        self._cursor = Stream(event_stream).cursor()
        self._length = 0

    @staticmethod
    def make_definition(
        name: str,
        tango_url: str,
        source: str,
        acq_uuid: str,
        master_file: Sequence[str] | None,
        dtype: Any,
        shape: Sequence[int],
        runs: dict[str, Any] | None = None,
    ) -> StreamDefinition:
        """``runs``: the scan is one run per point (``frames_per_run``, ``master_files``)."""
        info = {
            "plugin": PLUGIN,
            "protocol_version": RUNS_PROTOCOL_VERSION if runs else PROTOCOL_VERSION,
            "dtype": np.dtype(dtype).name,
            "shape": list(shape),
            "tango_url": tango_url,
            "source": source,
            "acq_uuid": acq_uuid,
            "master_file": list(master_file) if master_file else None,
        }
        if runs:
            info["runs"] = runs
        return StreamDefinition(name, info, NumericStreamEncoder(np.uint32))

    @property
    def kind(self) -> str:
        return "array"

    @property
    def plugin(self) -> str:
        return PLUGIN

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    def __len__(self) -> int:
        try:
            view = self._cursor.read(block=False, last_only=True)
        except Exception:  # noqa: BLE001 - end of stream: keep the last length
            view = None
        if view is not None:
            self._length = int(view.get_data()[-1])
        return self._length

    def __getitem__(self, key: int | slice) -> np.ndarray:
        sealed = self.is_sealed()
        size = len(self)
        if isinstance(key, int):
            if key == -1 and not sealed:
                return self.frame_source.newest(size)[0]
            if key < 0:
                key += size
            if not 0 <= key < size:
                raise IndexNotYetThereError(f"frame {key} is not available ({size} frames)")
            return self.frame_source.frames(key, key + 1, 1, sealed)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(size)
            return self.frame_source.frames(start, stop, step, sealed)
        raise TypeError(f"frame index must be an int or a slice, not {type(key).__name__}")

    def _need_last_only(self, last_only: bool) -> bool:
        return True  # each event is the current count: only the newest matters

    def _build_view_from_events(self, index: int, events: EventRange, last_only: bool) -> ConductorView:
        stop = int(events.data[-1])
        if stop <= index:
            raise EmptyViewException
        return ConductorView(self.frame_source, stop - 1 if last_only else index, stop, self.is_sealed())

    def get_last_live_image(self) -> ImageData:
        frame, idx = self.frame_source.newest(len(self))
        return ImageData(array=frame, frame_id=idx, acq_tag=None)


stream_cls = ConductorStream
view_cls = ConductorView
