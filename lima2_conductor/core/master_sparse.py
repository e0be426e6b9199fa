"""The master file of a sparse source: the receivers' sparse frames copied in global order.

Sparse frames (SMX peaks) have no fixed size, so a virtual dataset cannot map them: the
master file holds a copy of the contiguous prefix of saved frames, read from the
receivers' files as they stand.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .master_file import Saving
from .master_publish import published
from .nexus_tree import write_master_tree
from .thread_rules import forbid_loop_thread


def read_sparse_files(saving: Saving, nb_receivers: int) -> list[tuple[int, Any, Any]]:
    """Every sparse frame saved so far: ``(global index, pixel indices, intensities)``,
    read from each receiver's files in order until one is missing or unreadable (still
    being written). Blocking."""
    import h5py

    frames: list[tuple[int, Any, Any]] = []
    for rank in range(nb_receivers):
        k = 0
        while True:
            path = os.path.join(saving.base_path, saving.file_name(rank, k))
            if not os.path.exists(path):
                break
            try:
                with h5py.File(path, "r", locking=False) as f:
                    group = f[saving.data_path]
                    ptr, idx = group["frame_ptr"][()], group["frame_idx"][()]
                    index, intensity = group["index"][()], group["intensity"][()]
            except (OSError, KeyError):
                break
            frames += [(int(g), index[ptr[j] : ptr[j + 1]], intensity[ptr[j] : ptr[j + 1]]) for j, g in enumerate(idx)]
            k += 1
    return frames


def write(path: str, saving: Saving, nb_receivers: int, metadata: dict[str, Any]) -> int:
    """The master file of a sparse source: the contiguous prefix of saved frames in global
    order, copied (not virtual) under ``<entry>/<instrument>/<detector>/data`` (a group):
    ``index`` (uint32), ``intensity``, ``frame_ptr`` (uint64, frames + 1; frame ``j`` is
    ``index[frame_ptr[j]:frame_ptr[j + 1]]``) and ``frame_idx``. Blocking; returns the
    frame count."""
    forbid_loop_thread("writing a master file")
    import h5py

    frames = sorted(read_sparse_files(saving, nb_receivers), key=lambda t: t[0])
    total = 0
    while total < len(frames) and frames[total][0] == total:
        total += 1
    frames = frames[:total]
    sizes = np.array([len(f[1]) for f in frames], dtype=np.uint64)
    with published(path, str(metadata.get("uuid", "")), saving.overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            group = f.require_group(saving.data_path)
            group.attrs["NX_class"] = "NXdata"
            group["index"] = np.concatenate([f_[1] for f_ in frames]).astype("<u4") if frames else np.empty(0, "<u4")
            group["intensity"] = np.concatenate([f_[2] for f_ in frames]) if frames else np.empty(0, dtype=np.uint16)
            group["frame_ptr"] = np.concatenate([[0], np.cumsum(sizes)]).astype("<u8")
            group["frame_idx"] = np.arange(total, dtype="<i8")
            write_master_tree(f, saving, path, group, ("Conductor.MasterFile.Sparse", "1.0"), metadata)
    return total
