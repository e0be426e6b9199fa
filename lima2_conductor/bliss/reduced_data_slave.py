"""The acquisition slave of a reduced-data source: its rows (ROI statistics and profiles,
``nb_peaks``, ``fill_factor``) read with ``GetReducedData`` and emitted in frame order as
the conductor makes them, one row per frame, each frame once.
"""

from __future__ import annotations

from typing import Any

import tango
from bliss.scanning.chain import AcquisitionSlave

from .acquisition_master import ENDED
from .client import ConductorClient, Run, devfailed_text


class ReducedDataAcquisitionSlave(AcquisitionSlave):
    """Emits the rows of one reduced-data source, in frame order, as they arrive."""

    def __init__(self, controller: Any, npoints: int, prepare_once: bool, ctrl_params: Any = None) -> None:
        super().__init__(
            controller,
            npoints=npoints,
            prepare_once=prepare_once,
            start_once=prepare_once,
            ctrl_params=ctrl_params,
        )
        self._stop_requested = False
        self._cursor = 0  # frames of the run ``_cursor_run`` emitted so far
        self._cursor_run = ""

    def prepare(self) -> None:
        self._stop_requested = False

    def start(self) -> None:
        pass

    def trigger(self) -> None:
        pass

    def stop(self) -> None:
        self._stop_requested = True

    def reading(self) -> None:
        master = self.parent
        client: ConductorClient = master.client
        run: Run = master.run
        device = self.device
        by_channel: dict[int, list[tuple[str, Any]]] = {}
        lengths: dict[int, int] = {}
        for counter, channels in self._counters.items():
            index = device.channel_index(counter)
            by_channel.setdefault(index, []).extend((counter.field, ch) for ch in channels)
            lengths[index] = int(counter.row_length)
        lengths = {index: lengths[index] for index in sorted(lengths)}
        total = master.run_frames
        if not lengths:
            return
        if self._cursor_run != run.uuid:  # a new run (one per point in internal trigger)
            self._cursor, self._cursor_run = 0, run.uuid

        def more(v: dict[str, Any]) -> bool:
            return int(v.get("reduced_data_ready", 0)) > self._cursor or str(v.get("run_state")) in ENDED

        # the cursor outlives this task: Bliss spawns the reading again at a trigger when
        # it has ended (a short run), and no frame may be emitted twice
        while not self._stop_requested and (total <= 0 or self._cursor < total):
            run.wait(more, timeout=0.5, needs=("run_state", "reduced_data_ready"), poll_period=0.02)
            if self._stop_requested:
                return
            ended = str(run.values.get("run_state")) in ENDED
            try:
                n = self._emit(client, lengths, by_channel, self._cursor)
            except tango.DevFailed as exc:
                # e.g. another client's run replaced this one: the scan's error names the
                # detector and the run, as the master's do
                cause = f"GetReducedData refused by {client.name}: {devfailed_text(exc)}"
                raise client.failure(master.name, run, cause) from exc
            self._cursor += n
            if ended and n == 0:
                return

    def _emit(
        self,
        client: ConductorClient,
        lengths: dict[int, int],
        by_channel: dict[int, list[Any]],
        cursor: int,
    ) -> int:
        """Fetch and emit the rows of frames ``cursor``... (the same frames for every
        channel); the number of frames emitted."""
        source, dtype = self.device.source, self.device.row_dtype
        order = list(lengths)
        blocks = {order[0]: client.reduced_rows(source, order[0], cursor, 0, dtype)}
        n = len(blocks[order[0]]) // lengths[order[0]]
        if n == 0:
            return 0
        for index in order[1:]:
            blocks[index] = client.reduced_rows(source, index, cursor, n, dtype)
            n = min(n, len(blocks[index]) // lengths[index])
        for index in order:
            rows = blocks[index][: n * lengths[index]]
            if source == "roi_profile":
                rows = rows.reshape(n, lengths[index])
            for field, channel in by_channel[index]:
                channel.emit(rows[field])
        return n
