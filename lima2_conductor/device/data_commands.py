"""The conductor's data and information commands: frames, reduced data, params, diagnostics."""

from __future__ import annotations

import json
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import tango
from tango import DispLevel
from tango.server import attribute, command

from ..core import lima2
from ..core.devencoded import encode_rows
from ..core.errors import ParamError
from ..core.lookup import cached_where, newest_getter, requested_source
from ..core.params import settings_overrides
from ..core.processing_classes import class_defaults, class_schemas, known_class, offers
from .errors import raise_devfailed, tango_errors

if TYPE_CHECKING:
    from ..core.ports import FrameRelay
    from ..core.system import AcquisitionSystem
    from ..core.view import ConductorView
    from .monitor import Monitor

T = TypeVar("T")


class DataCommands:
    """Mixed into the device class (its commands become the device's)."""

    if TYPE_CHECKING:  # what the device class provides

        @property
        def system(self) -> AcquisitionSystem: ...
        @property
        def view(self) -> ConductorView: ...

        frames: FrameRelay | None
        settings: dict[str, Any]
        monitor: Monitor | None

        def in_loop(self, work: Coroutine[Any, Any, T]) -> T: ...
        def get_name(self) -> str: ...

    @command(
        dtype_in=int,
        doc_in="Where a frame is. Global frame index, -1 = the newest processed frame",
        dtype_out=str,
        doc_out="JSON: frame_idx, source, receiver, processing_device, command, local_idx, "
        "hdf5 {file, dataset, index} or null",
    )
    @tango_errors
    async def Lookup(self, frame_idx: int) -> str:
        _check_index(frame_idx)
        return json.dumps(await self.system.lookup(int(frame_idx)))

    @command(
        dtype_in=tango.DevVarLongStringArray,
        doc_in="One frame. [[frame_idx], [source]]: one source from frame_channels (or <source>:dense), "
        "frame_idx -1 = the newest",
        dtype_out=tango.DevEncoded,
        doc_out="The frame as the processing device encodes it (Lima2 DATA_ARRAY for dense frames)",
        cmd_green_mode=False,
    )
    @tango_errors
    def GetFrame(self, argin: Any) -> tuple[str, bytes | bytearray]:
        """Served in the calling Tango thread: a frame that the cached counters place on a
        processing device (or ``-1``, the newest) is asked of that device at once, its
        DevEncoded passed through (:mod:`lima2_conductor.backend.frame_fetch`); anything
        else (a frame newer than the counters, one no longer in the device's buffer but in
        its file, ``:dense``, any error) takes the event loop's full path."""
        ints, strs = _long_string(argin, 1, "GetFrame")
        _check_index(ints[0])
        run, frames = self.system.run, self.frames
        idx, source = int(ints[0]), requested_source(run, strs)
        getter = self._frame_getter(run, frames, idx, source) if run is not None and frames is not None else None
        if getter is not None and run is not None and frames is not None:
            try:
                return frames.fetch(run.uuid, *getter, idx)
            except tango.DevFailed:
                pass  # the full path says why, or reads the frame from its file
        return self.in_loop(self.system.get_frame(idx, source))

    def _frame_getter(self, run: Any, frames: FrameRelay, idx: int, source: str) -> tuple[str, str] | None:
        """(processing device, getter) of a frame, found without the event loop: by the
        cached counters, or for ``-1`` by every device's ``last_frames`` read at once (the
        device with the newest frame is asked for its newest, as the full path does)."""
        if idx != -1:
            where = cached_where(run, idx, source)
            return None if where is None else (where["processing_device"], where["command"])
        if source.endswith(lima2.DENSE_SUFFIX) or not run.processing:
            return None
        return newest_getter(run, source, frames.last_frames(run.uuid, [d.name for d in run.processing]))

    @command(
        dtype_in=tango.DevVarLongStringArray,
        doc_in="Reduced data rows. [[channel_idx, from_frame, max_rows], [name]] (name from "
        "reduced_data_channels; max_rows 0 = all available)",
        dtype_out=tango.DevEncoded,
        doc_out="STRUCTURED_ARRAY rows in global frame order",
    )
    @tango_errors
    async def GetReducedData(self, argin: Any) -> tuple[str, bytes]:
        ints, strs = _long_string(argin, 3, "GetReducedData")
        if not strs:
            raise ParamError("GetReducedData needs the channel name, e.g. [[0, 0, 0], ['roi_stats']]")
        rows = self.system.current_run().pipeline.reduced(strs[0], ints[0], ints[1], ints[2])
        return encode_rows(rows)

    @command(dtype_out=str, doc_out="Default params of the next Prepare (JSON), settings included")
    @tango_errors
    async def DefaultParams(self) -> str:
        return await self._class_defaults("")

    @command(dtype_out=str, doc_out="JSON schemas of the params (control, receiver, processing, masterfile_metadata)")
    @tango_errors
    async def ParamsSchema(self) -> str:
        return await self._class_schemas("")

    @command(
        dtype_in=str,
        doc_in='A processing class (one of processing_classes; "" = the default class)',
        dtype_out=str,
        doc_out="As DefaultParams, for a Prepare of that class (JSON)",
    )
    @tango_errors
    async def ClassDefaultParams(self, class_name: str) -> str:
        return await self._class_defaults(class_name)

    async def _class_defaults(self, class_name: str) -> str:
        s = self.system
        spec = known_class(class_name)
        overrides = settings_overrides(self.settings)
        return json.dumps(
            await class_defaults(s.control, s.receivers[0], spec, overrides, s.timeout_s, s.check_database)
        )

    @command(
        dtype_in=str,
        doc_in='A processing class (one of processing_classes; "" = the default class)',
        dtype_out=str,
        doc_out="As ParamsSchema, for a Prepare of that class (JSON)",
    )
    @tango_errors
    async def ClassParamsSchema(self, class_name: str) -> str:
        return await self._class_schemas(class_name)

    async def _class_schemas(self, class_name: str) -> str:
        s = self.system
        spec = known_class(class_name)
        return json.dumps(await class_schemas(s.control, s.receivers[0], spec, s.timeout_s, s.check_database))

    @attribute(
        dtype=str,
        label="Processing classes",
        doc="JSON: every processing class the conductor conducts -> offered (the receivers publish "
        'its proc_params schema), version (its Lima2 Version, "" if unknown), default, error (why not '
        'offered or no version, "" if none); read from the receivers\' Tango classes at each read',
        display_level=DispLevel.EXPERT,
    )
    async def processing_classes(self) -> str:
        try:
            s = self.system
        except ParamError as exc:
            raise_devfailed(exc, f"{self.get_name()}.processing_classes")
        return json.dumps(await offers(s.receivers[0], s.timeout_s), sort_keys=True)

    @command(
        dtype_out=str,
        doc_out="Diagnostics (JSON): devices, states, run, timings, error history",
        display_level=DispLevel.EXPERT,
    )
    @tango_errors
    async def GetInfo(self) -> str:
        s = self.system
        run = s.run
        started = run.started_at if run else 0.0
        return json.dumps(
            {
                "control": s.control.name,
                "receivers": [r.name for r in s.receivers],
                "processing": [p.name for p in run.processing] if run else [],
                "topology": s.topology.name,
                "device_states": self.view.device_states,
                "run_state": s.run_state.value,
                "uuid": s.uuid,
                "adopted": bool(run and run.adopted),
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)) if started else "",
                "timings": {**s.timings, **(run.timings if run else {})},
                "monitor": self.monitor.stats() if self.monitor else {},
                "frame_calls": self.frames.stats() if self.frames else {},
                "errors": s.errors,
                "history": s.history,
                "completions": [c.info() for c in s.completions.records],
            }
        )


def _check_index(frame_idx: int) -> None:
    if frame_idx < -1:
        raise ParamError(f"frame index {frame_idx} must be >= 0, or -1 for the newest")


def _long_string(argin: Any, nb_ints: int, command: str) -> tuple[list[int], list[str]]:
    """Check a DevVarLongStringArray argument: ``nb_ints`` integers and strings."""
    try:
        ints, strs = [int(v) for v in argin[0]], [str(v) for v in argin[1]]
    except (TypeError, ValueError, IndexError):
        raise ParamError(f"{command} takes [[{nb_ints} integer(s)], [string(s)]]") from None
    if len(ints) != nb_ints:
        raise ParamError(f"{command} takes {nb_ints} integer(s), got {len(ints)}")
    return ints, strs
