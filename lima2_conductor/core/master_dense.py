"""The master file of a dense source: one HDF5 virtual dataset restoring global frame order.

Each receiver file is one selection of the virtual dataset: with round robin one
**strided** hyperslab (``start:stop:N``), with dynamic dispatch the runs of consecutive
frames, never one mapping per frame. Added under ``<entry>/conductor``: the topology, the
frame count, a per-file mapping table (file, first global frame, step, count) and, for a
failed run, the frames no receiver saved (read as the fill value). A vector source (1 x 1
x length frames) is the same dataset marked as a spectrum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .master_file import Saving
from .master_publish import published
from .nexus_tree import write_master_tree
from .thread_rules import forbid_loop_thread
from .topology import FileMapping


def write(
    path: str,
    saving: Saving,
    total: int,
    mappings: list[FileMapping],
    frame_shape: tuple[int, int, int],
    dtype: np.dtype,
    metadata: dict[str, Any],
    vector: bool = False,
) -> None:
    """Write the master file atomically (blocking: call from a thread); a ``vector``
    source (1 x 1 x length frames) is marked as a spectrum."""
    forbid_loop_thread("writing a master file")
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
    with published(path, str(metadata.get("uuid", "")), saving.overwrite) as tmp:
        # the HDF5 1.10 format, the first with virtual datasets: the oldest one makes
        # writing the mappings much slower (docs/benchmarks.rst)
        with h5py.File(tmp, "w", libver=("v110", "v110")) as f:
            parent = f.require_group(saving.data_path.rsplit("/", 1)[0])
            h5py.h5d.create(parent.id, b"data", h5py.h5t.py_create(dtype), vspace, dcpl=dcpl).close()
            dset = f[saving.data_path]
            dset.attrs["interpretation"] = "spectrum" if vector else "image"
            det = f[saving.entry][saving.instrument][saving.detector]
            det["plot/data"] = dset  # before the metadata: "plot" is the master file's own
            det["plot"].attrs.update({"NX_class": "NXdata", "signal": "data"})
            program = ("Conductor.MasterFile.Dense", "2.0")
            entry, inst, det, cond = write_master_tree(f, saving, path, dset, program, metadata)
            f.attrs["default"] = saving.entry
            entry.attrs["default"] = f"{saving.instrument}/{saving.detector}/plot"
            inst.attrs["default"] = f"{saving.detector}/plot"
            det.attrs["default"] = "plot"
            cond["topology"] = metadata.get("topology", "")
            cond["nb_frames"] = total
            if "missing_frames" in metadata:  # a failed run: frames no receiver saved (fill value)
                cond["missing_frames"] = np.asarray(metadata["missing_frames"], dtype="<i8")
            table = np.array(
                [(m.file.encode(), m.start, m.step, m.count) for m in mappings],
                dtype=[("file", "S256"), ("first_frame", "<i8"), ("step", "<i8"), ("count", "<i8")],
            )
            cond.create_dataset("files", data=table)


def _runs(indices: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """Sorted indices as (start, length) runs of consecutive values."""
    if not len(indices):
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(indices)]])
    return [(int(indices[a]), int(b - a)) for a, b in zip(starts, ends, strict=True)]
