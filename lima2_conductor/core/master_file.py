"""The master file: one HDF5 virtual dataset restoring global frame order.

Layout is the official conductor's, so its readers open ours unchanged:
``{base_path}/{filename_prefix}_master.h5``, the virtual dataset at
``<entry>/<instrument>/<detector>/data`` (``interpretation = "image"``), links
``<entry>/measurement/data`` and ``<detector>/plot/data``, NeXus classes, and the
acquisition params, processing params and ``det_info`` as nested groups under the
detector. Added: ``conductor/`` with the UUID, topology, frame count and a per-file
mapping table (file, first global frame, step, count).

With round robin each receiver file is one **strided** hyperslab of the virtual
dataset (``start:stop:N``), not one mapping per frame. The file is written in a
thread, under a temporary name, then renamed: a master file exists only complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import SavingError
from .topology import FrameTable, RoundRobin, SingleReceiver, Topology


@dataclass(frozen=True)
class FileMapping:
    """Frames of one receiver file: global ``start + step * k`` for ``k < count``,
    or the explicit ``indices`` (dynamic dispatch)."""

    file: str  # relative to the master file
    start: int
    step: int
    count: int
    indices: npt.NDArray[np.int64] | None = None


@dataclass(frozen=True)
class Saving:
    """The saving parameters the master file needs."""

    base_path: str
    filename_prefix: str
    filename_format: str
    filename_suffix: str
    start_number: int
    nb_frames_per_file: int
    entry: str
    instrument: str
    detector: str
    nb_dimensions: str
    file_exists_policy: str

    @staticmethod
    def from_params(saving: dict[str, Any]) -> Saving:
        return Saving(
            saving["base_path"],
            saving["filename_prefix"],
            saving.get("filename_format", "{filename_prefix}_{filename_rank}_{file_number:05d}{filename_suffix}"),
            saving.get("filename_suffix", ".h5"),
            int(saving.get("start_number", 0)),
            int(saving["nb_frames_per_file"]),
            saving["nx_entry_name"],
            saving["nx_instrument_name"],
            saving["nx_detector_name"],
            saving["nb_dimensions"],
            saving["file_exists_policy"],
        )

    @property
    def master_path(self) -> str:
        return os.path.join(self.base_path, f"{self.filename_prefix}_master.h5")

    @property
    def data_path(self) -> str:
        return f"{self.entry}/{self.instrument}/{self.detector}/data"

    def file_name(self, rank: int, file_idx: int) -> str:
        return self.filename_format.format(
            filename_prefix=self.filename_prefix,
            filename_rank=rank,
            file_number=self.start_number + file_idx,
            filename_suffix=self.filename_suffix,
        )

    def check_target(self) -> None:
        """Refuse at Prepare a master file that could not be written."""
        if not os.path.isdir(self.base_path):
            raise SavingError(f"saving directory {self.base_path!r} does not exist")
        if not os.access(self.base_path, os.W_OK | os.X_OK):
            raise SavingError(f"saving directory {self.base_path!r} is not writable")
        if os.path.exists(self.master_path) and self.file_exists_policy != "overwrite":
            raise SavingError(f"{self.master_path} exists and file_exists_policy is {self.file_exists_policy!r}")


def layout(
    topology: Topology, saved: list[int], saving: Saving, table: FrameTable | None = None
) -> tuple[int, list[FileMapping]]:
    """Frame count and file mappings of the contiguous prefix of saved frames."""
    per_file = saving.nb_frames_per_file
    mappings: list[FileMapping] = []
    if isinstance(topology, SingleReceiver | RoundRobin):
        total = topology.frames_ready(saved)
        n = topology.nb_receivers
        ordering = topology.ordering if isinstance(topology, RoundRobin) else (0,)
        for pos, rank in enumerate(ordering):
            local_total = len(range(pos, total, n))  # local frames of this receiver inside the prefix
            for k in range(0, (local_total + per_file - 1) // per_file):
                count = min(per_file, local_total - k * per_file)
                mappings.append(FileMapping(saving.file_name(rank, k), pos + n * k * per_file, n, count))
        return total, mappings
    if table is None:
        raise ValueError("dynamic dispatch needs the frame table")
    total = min(table.known_prefix(), int(sum(saved)))
    ranks, local = table.receiver[:total], table.local[:total]
    for rank in range(len(saved)):
        mine = np.flatnonzero(ranks == rank)
        if len(mine) and local[mine].max() >= saved[rank]:
            total = min(total, int(mine[local[mine] >= saved[rank]].min()))
    ranks, local = ranks[:total], local[:total]
    for rank in range(len(saved)):
        mine = np.flatnonzero(ranks == rank)
        files = local[mine] // per_file
        for k in np.unique(files):
            idx = mine[files == k]
            mappings.append(FileMapping(saving.file_name(rank, int(k)), int(idx[0]), 0, len(idx), idx.astype(np.int64)))
    return total, mappings


def write(
    path: str,
    saving: Saving,
    total: int,
    mappings: list[FileMapping],
    frame_shape: tuple[int, int, int],
    dtype: np.dtype,
    metadata: dict[str, Any],
) -> None:
    """Write the master file atomically (blocking: call from a thread)."""
    import h5py

    channels, height, width = frame_shape
    four_d = saving.nb_dimensions == "dim_4d" or channels > 1
    shape = (channels, height, width) if four_d else (height, width)
    ones = (1,) * len(shape)
    zeros = (0,) * len(shape)
    # The low-level API: one hyperslab per file, no per-frame Python work.
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_fill_value(np.zeros(1, dtype=dtype))
    vspace = h5py.h5s.create_simple((total, *shape))
    dataset_name = saving.data_path.encode()
    selection = vspace.copy()  # H5Pset_virtual copies it: one object serves every mapping
    sources: dict[int, Any] = {}
    for m in mappings:
        if m.count == 0:
            continue
        if m.indices is not None:
            selection.select_none()
            for start, length in _runs(m.indices):
                selection.select_hyperslab((start, *zeros), (length, *ones), block=(1, *shape), op=h5py.h5s.SELECT_OR)
        else:
            selection.select_hyperslab((m.start, *zeros), (m.count, *ones), (max(1, m.step), *ones), (1, *shape))
        source = sources.get(m.count) or sources.setdefault(m.count, h5py.h5s.create_simple((m.count, *shape)))
        dcpl.set_virtual(selection, m.file.encode(), dataset_name, source)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        # HDF5 >= 1.10 formats (VDS needs 1.10 anyway): the oldest format is ~5x slower
        with h5py.File(tmp, "w", libver=("v110", "v110")) as f:
            parent = f.require_group(saving.data_path.rsplit("/", 1)[0])
            h5py.h5d.create(parent.id, b"data", h5py.h5t.py_create(dtype), vspace, dcpl=dcpl).close()
            dset = f[saving.data_path]
            dset.attrs["interpretation"] = "image"
            entry, inst, det = (
                f[saving.entry],
                f[saving.entry][saving.instrument],
                f[saving.entry][saving.instrument][saving.detector],
            )
            f.attrs.update(
                {
                    "NX_class": "NXroot",
                    "default": saving.entry,
                    "file_name": path,
                    "creator": "lima2-tango-conductor",
                    "file_time": datetime.now(UTC).isoformat(),
                }
            )
            entry.attrs.update({"NX_class": "NXentry", "default": f"{saving.instrument}/{saving.detector}/plot"})
            entry["program_name"] = "Conductor.MasterFile.Dense"
            entry["program_name"].attrs["version"] = "2.0"
            inst.attrs.update({"NX_class": "NXinstrument", "default": f"{saving.detector}/plot"})
            det.attrs.update({"NX_class": "NXdetector", "default": "plot"})
            f[f"{saving.entry}/measurement/data"] = dset
            f[f"{saving.entry}/measurement"].attrs["NX_class"] = "NXcollection"
            det["plot/data"] = dset
            det["plot"].attrs.update({"NX_class": "NXdata", "signal": "data"})
            for key in ("params", "detector_information"):
                if key in metadata:
                    _write_tree(det, key, metadata[key])
            cond = entry.create_group("conductor")
            cond.attrs["NX_class"] = "NXcollection"
            cond["uuid"] = metadata.get("uuid", "")
            cond["topology"] = metadata.get("topology", "")
            cond["nb_frames"] = total
            table = np.array(
                [(m.file.encode(), m.start, m.step, m.count) for m in mappings],
                dtype=[("file", "S256"), ("first_frame", "<i8"), ("step", "<i8"), ("count", "<i8")],
            )
            cond.create_dataset("files", data=table)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _runs(indices: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """Sorted indices as (start, length) runs of consecutive values."""
    if not len(indices):
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(indices)]])
    return [(int(indices[a]), int(b - a)) for a, b in zip(starts, ends, strict=True)]


def _write_tree(group: Any, name: str, value: Any) -> None:
    if isinstance(value, dict):
        sub = group.create_group(name)
        sub.attrs["NX_class"] = "NXcollection"
        for k, v in value.items():
            _write_tree(sub, str(k), v)
    elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        sub = group.create_group(name)
        sub.attrs["NX_class"] = "NXcollection"
        for i, v in enumerate(value):
            _write_tree(sub, str(i), v)
    elif value is None:
        group[name] = "None"
    elif isinstance(value, list):
        group[name] = json.dumps(value) if not value else value
    else:
        group[name] = value
