"""Pipeline services of one run: reduced data, frame lookup, master file.

Built at Prepare from the processing params; fed by the system's monitor ticks (pops of
every processing device); read by the conductor's commands.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import master_file
from .devencoded import decode_rows
from .errors import NotFound, ParamError, SavingError
from .ports import ProcessingPort
from .reduced_data import FRAME_IDX_DTYPE, ReducedStore, sources_from_params
from .topology import DynamicDispatch, FrameTable, Topology

logger = logging.getLogger(__name__)

FRAME_SOURCES = {"frame": "getFrame", "input_frame": "getInputFrame"}
PIXEL_DTYPES = {
    "gray8": "u1",
    "gray8s": "i1",
    "gray16": "<u2",
    "gray16s": "<i2",
    "gray32": "<u4",
    "gray32s": "<i4",
    "gray32f": "<f4",
    "gray64f": "<f8",
}


@dataclass
class RunPipeline:
    uuid: str
    topology: Topology
    devices: list[ProcessingPort]
    receivers: list[str]
    proc_params: dict[str, Any]
    nb_frames: int
    frame_info: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        hint = self.nb_frames or 1024
        self.stores = {s.name: ReducedStore(s, size_hint=hint) for s in sources_from_params(self.proc_params)}
        saving = self.proc_params.get("saving", {})
        self.saving = master_file.Saving.from_params(saving) if saving.get("enabled") else None
        self.table = (
            FrameTable(len(self.devices), min(hint, 1 << 20)) if isinstance(self.topology, DynamicDispatch) else None
        )
        self.master_written: dict[str, tuple[str, str]] = {}
        self.rows_merged = 0

    # -- feeding ---------------------------------------------------------------------
    async def fetch(self, call: Any) -> None:
        """Pop every reduced-data source (and frame indices) of every processing device.

        ``call(device, action, awaitable)`` is the system's deadline-bounded call.
        """
        if self.table is not None:
            chunks = await asyncio.gather(*(call(d, "popFrameIdx", d.pop("popFrameIdx")) for d in self.devices))
            for rank, raw in enumerate(chunks):
                rows = decode_rows(raw, FRAME_IDX_DTYPE)
                self.table.add(rank, rows["frame_idx"])
        for store in self.stores.values():
            chunks = await asyncio.gather(
                *(call(d, store.source.getter, d.pop(store.source.getter)) for d in self.devices)
            )
            for raw in chunks:
                rows = decode_rows(raw, store.source.dtype)
                store.add(rows)
                self.rows_merged += len(rows)

    # -- reading ---------------------------------------------------------------------
    def channels(self) -> dict[str, Any]:
        return {name: {**s.source.describe(), "frames_ready": s.ready} for name, s in self.stores.items()}

    def reduced(self, name: str, channel: int, from_frame: int, max_rows: int) -> np.ndarray:
        if name not in self.stores:
            raise NotFound(f"no reduced data channel {name!r} (have: {', '.join(self.stores) or 'none'})")
        return self.stores[name].read(channel, from_frame, max_rows)

    def locate(self, frame_idx: int) -> tuple[int, int]:
        if self.nb_frames and frame_idx >= self.nb_frames:
            raise NotFound(f"frame {frame_idx} is past the end of the acquisition ({self.nb_frames} frames)")
        if frame_idx < 0:
            raise ParamError(f"frame index {frame_idx} must be >= 0, or -1 for the latest")
        if self.table is not None:
            try:
                return self.table.locate(frame_idx)
            except KeyError:
                raise NotFound(f"frame {frame_idx} has not been acquired yet") from None
        return self.topology.locate(frame_idx)

    def lookup(self, frame_idx: int, processed: list[int], saved: list[int], source: str = "frame") -> dict[str, Any]:
        """Where frame ``frame_idx`` is: receiver, processing device, getter, HDF5."""
        if source not in FRAME_SOURCES:
            raise NotFound(f"no frame source {source!r} (have: {', '.join(FRAME_SOURCES)})")
        rank, local = self.locate(frame_idx)
        if local >= processed[rank]:
            raise NotFound(
                f"frame {frame_idx} has not been acquired yet ({self.receivers[rank]} has {processed[rank]} frames)"
            )
        h5 = None
        if self.saving is not None and source == "frame" and local < saved[rank]:
            per_file = self.saving.nb_frames_per_file
            h5 = {
                "file": f"{self.saving.base_path}/{self.saving.file_name(rank, local // per_file)}",
                "dataset": self.saving.data_path,
                "index": int(local % per_file),
            }
        return {
            "frame_idx": int(frame_idx),
            "receiver": self.receivers[rank],
            "rank": rank,
            "processing_device": self.devices[rank].name,
            "command": FRAME_SOURCES[source],
            "local_idx": int(local),
            "hdf5": h5,
        }

    # -- master file -----------------------------------------------------------------
    def master_files(self) -> dict[str, list[str]]:
        if self.saving is None:
            return {}
        return {"frame": [self.saving.master_path, self.saving.data_path]}

    def write_master(self, saved: list[int]) -> tuple[int, str]:
        """Write the master file of the frames saved (blocking: run in a thread)."""
        if self.saving is None:
            return 0, ""
        total, mappings = master_file.layout(self.topology, saved, self.saving, self.table)
        info = self.frame_info
        shape = (int(info["nb_channels"]), int(info["dimensions"]["y"]), int(info["dimensions"]["x"]))
        dtype = np.dtype(PIXEL_DTYPES[info["pixel_type"]])
        try:
            master_file.write(
                self.saving.master_path,
                self.saving,
                total,
                mappings,
                shape,
                dtype,
                {**self.metadata, "uuid": self.uuid, "topology": self.topology.name},
            )
        except OSError as exc:
            raise SavingError(f"cannot write {self.saving.master_path}: {exc}") from exc
        return total, self.saving.master_path
