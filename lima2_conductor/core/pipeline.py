"""Pipeline services of one run: reduced data, frame lookup, saved frames, master files.

Built at Prepare from the processing class's spec (``lima2.PIPELINES``) and params; fed by
the monitor's ticks (pops of every processing device); read by the conductor's commands.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from . import master_dense, master_file, master_sparse
from .devencoded import decode_rows, encode_frame
from .errors import ConductorError, NotFound, ParamError, SavingError
from .lima2 import (
    DENSE,
    DENSE_SUFFIX,
    FRAME_IDX_DTYPE,
    FRAME_IDX_GETTER,
    SPARSE,
    VECTOR,
    PipelineSpec,
    pixel_dtype,
)
from .ports import ProcessingPort
from .reduced_data import ReducedStore
from .topology import Locator

logger = logging.getLogger(__name__)
MASTER_FILE_KINDS = (DENSE, VECTOR, SPARSE)
"""Frame kinds that get a master file (a virtual dataset over the receivers' files for
dense and vector frames, a copy in global order for sparse ones)."""
Call = Callable[[Any, str, Awaitable[Any]], Awaitable[Any]]
"""``call(device, action, awaitable)``: the system's deadline-bounded remote call."""


class RunPipeline:
    """The processing side of one run, across every receiver."""

    def __init__(
        self,
        uuid: str,
        spec: PipelineSpec,
        locator: Locator,
        devices: list[ProcessingPort],
        receivers: list[str],
        proc_params: dict[str, Any],
        nb_frames: int,
        frame_info: dict[str, dict[str, Any]],
        metadata: dict[str, Any] | None = None,
        topology_name: str = "",
    ) -> None:
        self.uuid = uuid
        self.spec = spec
        self.locator = locator
        self.devices = devices
        self.receivers = receivers
        self.proc_params = proc_params
        self.nb_frames = nb_frames
        self.frame_info = frame_info
        self.metadata = metadata or {}
        self.topology_name = topology_name
        hint = nb_frames or 1024
        self.stores = {s.name: ReducedStore(s, size_hint=hint) for s in spec.reduced(proc_params)}
        self.savings = {
            s.name: master_file.Saving.from_params(proc_params[s.saving])
            for s in spec.saved_sources(proc_params)
            if s.saving and s.kind in MASTER_FILE_KINDS
        }

    @property
    def saving(self) -> master_file.Saving | None:
        """The saving of the main frame source (the first saved one), if any."""
        return next(iter(self.savings.values()), None)

    # -- feeding ---------------------------------------------------------------------
    async def fetch(self, call: Call, ranks: Sequence[bool] | None = None) -> None:
        """Pop every reduced-data source (and frame indices) of the processing devices
        (those whose rank ``ranks`` marks, default all), all at once. What was popped is
        kept even when another pop failed (the first failure is raised after)."""
        getters = ([FRAME_IDX_GETTER] if self.locator.needs_frame_idx else []) + [
            store.source.getter for store in self.stores.values()
        ]
        wanted = [rank for rank in range(len(self.devices)) if ranks is None or ranks[rank]]
        calls = [(g, rank) for g in getters for rank in wanted]
        replies = await asyncio.gather(
            *(call(self.devices[rank], g, self.devices[rank].pop(g)) for g, rank in calls), return_exceptions=True
        )
        got = {key: raw for key, raw in zip(calls, replies, strict=True) if not isinstance(raw, BaseException)}
        if self.locator.needs_frame_idx:
            for rank in wanted:
                if (FRAME_IDX_GETTER, rank) in got:
                    self.locator.learn(rank, decode_rows(got[FRAME_IDX_GETTER, rank], FRAME_IDX_DTYPE)["frame_idx"])
        for store in self.stores.values():
            for rank in wanted:
                if (store.source.getter, rank) in got:
                    store.add(decode_rows(got[store.source.getter, rank], store.source.dtype))
        for failure in replies:
            if isinstance(failure, BaseException):
                raise failure

    # -- reading ---------------------------------------------------------------------
    def channels(self) -> dict[str, Any]:
        return {name: {**s.source.describe(), "frames_ready": s.ready} for name, s in self.stores.items()}

    def reduced_ready(self) -> int:
        """Frames whose reduced data is available in every channel."""
        return int(min(store.ready for store in self.stores.values())) if self.stores else 0

    def reduced(self, name: str, channel: int, from_frame: int, max_rows: int) -> np.ndarray:
        if name not in self.stores:
            raise NotFound(f"no reduced data channel {name!r} (have: {', '.join(self.stores) or 'none'})")
        return self.stores[name].read(channel, from_frame, max_rows)

    def frame_sources(self) -> dict[str, Any]:
        """Every frame source with its getter, kind, DevEncoded tag, shape (channels, height,
        width; a vector is 1 x 1 x length) and pixel type; sparse sources also answer as
        ``<source>:dense``, rebuilt as a dense image."""
        out = {}
        for s in self.spec.frame_sources:
            info = self.frame_info.get(s.name)
            if not info:
                continue
            shape = [info["nb_channels"], info["dimensions"]["y"], info["dimensions"]["x"]]
            out[s.name] = {
                "type": s.kind,
                "encoding": s.encoding,
                "getter": s.getter,
                "shape": shape,
                "pixel_type": info["pixel_type"],
                "saved": s.name in self.savings,
            }
            if s.kind not in (DENSE, VECTOR):
                out[s.name]["dense"] = f"{s.name}{DENSE_SUFFIX}"
        return out

    def locate(self, frame_idx: int) -> tuple[int, int]:
        if frame_idx < 0:
            raise ParamError(f"frame index {frame_idx} must be >= 0, or -1 for the latest")
        if self.nb_frames and frame_idx >= self.nb_frames:
            raise NotFound(f"frame {frame_idx} is past the end of the acquisition ({self.nb_frames} frames)")
        try:
            return self.locator.locate(frame_idx)
        except KeyError:
            raise NotFound(f"frame {frame_idx} has not been acquired yet") from None

    def lookup(
        self, frame_idx: int, processed: list[int], saved: list[int], source: str = "frame", known: bool = False
    ) -> dict[str, Any]:
        """Where frame ``frame_idx`` of ``source`` is: receiver, processing device, getter, HDF5.

        ``known``: the frame is known to be processed (the device said it is its newest).
        """
        try:
            src = self.spec.source(source)
        except KeyError as exc:
            raise NotFound(str(exc.args[0])) from None
        rank, local = self.locate(frame_idx)
        if not known and local >= processed[rank]:
            raise NotFound(
                f"frame {frame_idx} has not been acquired yet ({self.receivers[rank]} has {processed[rank]} frames)"
            )
        h5 = None
        saving = self.savings.get(source)
        if saving is not None and src.kind != SPARSE and local < saved[rank]:
            per_file = saving.nb_frames_per_file
            h5 = {
                "file": f"{saving.base_path}/{saving.file_name(rank, local // per_file)}",
                "dataset": saving.data_path,
                "index": int(local % per_file),
            }
        return {
            "frame_idx": int(frame_idx),
            "source": source,
            "receiver": self.receivers[rank],
            "rank": rank,
            "processing_device": self.devices[rank].name,
            "command": src.getter,
            "local_idx": int(local),
            "hdf5": h5,
        }

    # -- master files -------------------------------------------------------------------
    def master_files(self) -> dict[str, list[str]]:
        return {name: [s.master_path, s.data_path] for name, s in self.savings.items()}

    def write_master(self, saved: list[int], gapped: bool = False) -> tuple[int, str]:
        """Write the master file(s) of the frames saved (blocking: run in a thread).

        ``gapped`` (a failed run): every saved frame, the frames nobody saved in between
        listed as missing (:meth:`write_gapped_master` returns them), instead of the contiguous prefix. Any failure
        is a ``SavingError`` naming the file; returns the frame count and path of the main
        source's file."""
        total, path, _ = self.write_gapped_master(saved) if gapped else self._write(saved, False)
        return total, path

    def write_gapped_master(self, saved: list[int]) -> tuple[int, str, list[int]]:
        """``write_master(saved, gapped=True)``, also returning the frames the main source's
        file lists as missing (blocking: run in a thread)."""
        return self._write(saved, True)

    def _write(self, saved: list[int], gapped: bool) -> tuple[int, str, list[int]]:
        result: tuple[int, str, list[int]] = (0, "", [])
        for name, saving in self.savings.items():
            path = saving.master_path
            try:
                meta = {**self.metadata, "uuid": self.uuid, "topology": self.topology_name}
                if self.spec.source(name).kind == SPARSE:
                    master_sparse.write(path, saving, len(self.devices), meta)
                    continue
                if gapped:
                    total, mappings, missing = master_file.gapped_layout(
                        self.locator, saved, saving.nb_frames_per_file, saving.file_name
                    )
                    meta["missing_frames"] = missing
                else:
                    (total, mappings), missing = master_file.layout(self.locator, saved, saving), []
                info = self.frame_info[name]
                shape = (int(info["nb_channels"]), int(info["dimensions"]["y"]), int(info["dimensions"]["x"]))
                kind = self.spec.source(name).kind
                master_dense.write(
                    path, saving, total, mappings, shape, pixel_dtype(info["pixel_type"]), meta, kind == VECTOR
                )
            except ConductorError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of the write is a saving error
                raise SavingError(f"cannot write {path}: {exc}") from exc
            if not result[1]:
                result = (total, path, list(missing))
        return result


def read_saved_frame(where: dict[str, Any]) -> tuple[str, bytes]:
    """A frame from its HDF5 file, in the Lima2 DATA_ARRAY encoding (blocking)."""
    import h5py

    h5 = where["hdf5"]
    path = h5["file"]
    try:
        with h5py.File(path, "r") as f:
            frame = f[h5["dataset"]][h5["index"]]
    except FileNotFoundError:
        raise NotFound(f"frame {where['frame_idx']} was saved in {path}, which no longer exists") from None
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise SavingError(f"frame {where['frame_idx']}: cannot read {path}: {exc}") from None
    return encode_frame(frame, where["frame_idx"])
