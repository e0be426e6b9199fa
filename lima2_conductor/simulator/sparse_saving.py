"""HDF5 saving of sparse frames (XPCS ``sparse_frame``, SMX ``sparse_frame``).

Files are named and rolled over as dense files (``saving.file_name``). Under
``<entry>/<instrument>/<detector>/data`` (a group, ``NX_class = NXdata``): ``index``
(int32) and ``intensity`` (1-D, every stored pixel of the file's frames), ``frame_ptr``
(uint64, frames + 1, from 0: frame ``j`` is ``index[frame_ptr[j]:frame_ptr[j + 1]]``),
``frame_idx`` (global index of each frame) and, for SMX, ``background_avg`` and
``background_std`` (frames x bins). A file is written when it is full or at ``close``.
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from .disk_space import keep_broken, require_space
from .saving import file_name


class SparseWriter:
    """Collects one receiver's sparse frames and writes one file per ``nb_frames_per_file``."""

    def __init__(self, saving: dict[str, Any], intensity_dtype: np.dtype) -> None:
        self.saving = saving
        self.per_file = int(saving["nb_frames_per_file"])
        self.dtype = np.dtype(intensity_dtype)
        self.nb_saved = 0  # frames in files written
        self.paths: list[str] = []
        self._rows: list[tuple[int, npt.NDArray, npt.NDArray, npt.NDArray | None, npt.NDArray | None]] = []

    def add(
        self,
        frame_idx: int,
        index: npt.NDArray,
        intensity: npt.NDArray,
        background_avg: npt.NDArray | None = None,
        background_std: npt.NDArray | None = None,
    ) -> None:
        self._rows.append((frame_idx, index, intensity, background_avg, background_std))
        if len(self._rows) == self.per_file:
            self._flush()

    def close(self) -> None:
        if self._rows:
            self._flush()

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        number = self.nb_saved // self.per_file
        path = os.path.join(self.saving["base_path"], file_name(self.saving, number))
        mode = "w" if self.saving["file_exists_policy"] == "overwrite" else "w-"
        sizes = np.array([len(r[1]) for r in rows], dtype=np.uint64)
        nbytes = int(sizes.sum()) * (4 + np.dtype(self.dtype).itemsize) + 16 * len(rows)
        if rows[0][3] is not None:
            nbytes += sum(8 * r[3].size for r in rows)
        require_space(self.saving["base_path"], nbytes)
        f = h5py.File(path, mode, locking=False, rdcc_nbytes=0)
        parent: Any = f
        group: Any = None
        try:
            f.attrs["NX_class"] = "NXroot"
            for key, cls in (
                ("nx_entry_name", "NXentry"),
                ("nx_instrument_name", "NXinstrument"),
                ("nx_detector_name", "NXdetector"),
            ):
                parent = parent.require_group(self.saving[key])
                parent.attrs["NX_class"] = cls
            group = parent.require_group("data")
            group.attrs["NX_class"] = "NXdata"
            group["index"] = np.concatenate([r[1] for r in rows]).astype("<i4")
            group["intensity"] = np.concatenate([r[2] for r in rows]).astype(self.dtype)
            group["frame_ptr"] = np.concatenate([[0], np.cumsum(sizes)]).astype("<u8")
            group["frame_idx"] = np.array([r[0] for r in rows], dtype="<i8")
            if rows[0][3] is not None:
                group["background_avg"] = np.stack([r[3] for r in rows]).astype("<f4")
                group["background_std"] = np.stack([r[4] for r in rows]).astype("<f4")
            f.close()
        except Exception:
            keep_broken(f, parent, group)
            raise
        self.paths.append(path)
        self.nb_saved += len(rows)
