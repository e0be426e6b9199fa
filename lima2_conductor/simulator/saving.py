"""HDF5 saving of a receiver's frames, following the Lima2 file rules.

File ``k`` of receiver ``rank`` is ``{base_path}/{filename_format}`` formatted with
``filename_prefix``, ``filename_rank``, ``file_number = start_number + k`` and
``filename_suffix`` (default: ``{prefix}_{rank}_{k:05d}.h5``) and holds the
receiver's local frames ``k * nb_frames_per_file ...``. The frames dataset is
``<entry>/<instrument>/<detector>/data``, shape ``(n, height, width)`` when
``nb_dimensions`` is ``dim_3d_or_4d`` with one channel, else ``(n, channels,
height, width)``; with ``include_frame_idx`` a ``frame_idx`` dataset beside it holds
the global index of each frame. All methods block: call them from a worker thread.
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from ..core.lima2 import data_file_name, frames_dataset
from .disk_space import keep_broken, require_space
from .frames import FrameGeometry


def file_name(saving: dict[str, Any], file_number: int) -> str:
    """Name (not path) of file ``file_number`` of this receiver."""
    return data_file_name(saving, int(saving["filename_rank"]), file_number)


def data_path(saving: dict[str, Any]) -> str:
    return frames_dataset(saving)


def check_target(saving: dict[str, Any]) -> None:
    """Refuse a saving target that cannot work (raises ``OSError``/``ValueError``)."""
    base = saving["base_path"]
    if not os.path.isdir(base):
        raise FileNotFoundError(f"saving.base_path {base!r} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise PermissionError(f"saving.base_path {base!r} is not writable")
    try:
        first = file_name(saving, 0)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"saving.filename_format {saving['filename_format']!r}: {exc}") from None
    if saving["file_exists_policy"] != "overwrite" and os.path.exists(os.path.join(base, first)):
        raise FileExistsError(
            f"{os.path.join(base, first)} exists and saving.file_exists_policy is {saving['file_exists_policy']!r}"
        )


class FrameWriter:
    """Writes one receiver's frames, rolling over every ``nb_frames_per_file``."""

    def __init__(
        self, saving: dict[str, Any], geometry: FrameGeometry, acq_params: dict[str, Any], proc_params: dict[str, Any]
    ) -> None:
        self.saving = saving
        self.geometry = geometry
        self.per_file = saving["nb_frames_per_file"]
        self.four_d = saving["nb_dimensions"] == "dim_4d" or geometry.channels > 1
        self.acq_params = acq_params
        self.proc_params = proc_params
        self.file: h5py.File | None = None
        self.dataset: h5py.Dataset | None = None
        self.index_ds: h5py.Dataset | None = None
        self.file_number = -1
        self.nb_saved = 0

    def _open(self, file_number: int) -> None:
        self.close()
        path = os.path.join(self.saving["base_path"], file_name(self.saving, file_number))
        mode = "w" if self.saving["file_exists_policy"] == "overwrite" else "w-"
        # readers may open files still being written; no chunk cache: a frame is on disk
        # once written, so that the free space measured before the next one is true
        f = self.file = h5py.File(path, mode, locking=False, rdcc_nbytes=0)  # kept at once: see _abandon
        f.attrs["NX_class"] = "NXroot"
        f.attrs["creator"] = "lima2_conductor.simulator"
        entry = f.create_group(self.saving["nx_entry_name"])
        entry.attrs["NX_class"] = "NXentry"
        inst = entry.create_group(self.saving["nx_instrument_name"])
        inst.attrs["NX_class"] = "NXinstrument"
        det = inst.create_group(self.saving["nx_detector_name"])
        det.attrs["NX_class"] = "NXdetector"
        g = self.geometry
        frame_shape = g.shape if self.four_d else (g.height, g.width)
        self.dataset = det.create_dataset(
            "data",
            shape=(0, *frame_shape),
            maxshape=(self.per_file, *frame_shape),
            chunks=(1, *frame_shape),
            dtype=g.dtype,
        )
        self.dataset.attrs["interpretation"] = "image"
        if self.saving["include_frame_idx"]:
            self.index_ds = det.create_dataset(
                "frame_idx", shape=(0,), maxshape=(self.per_file,), dtype="<i8", chunks=(min(self.per_file, 4096),)
            )
        else:
            self.index_ds = None
        self.file = f
        self.file_number = file_number

    def write(self, frames: npt.NDArray, indices: npt.NDArray[np.int64]) -> None:
        """Append frames ``(n, c, h, w)`` with their global indices; ``OSError(ENOSPC)``
        before the first frame that would not fit on the disk."""
        done = 0
        while done < len(indices):
            file_number, in_file = divmod(self.nb_saved, self.per_file)
            take = min(self.per_file - in_file, len(indices) - done)
            chunk = frames[done : done + take]
            if not self.four_d:
                chunk = chunk[:, 0]
            require_space(self.saving["base_path"], chunk.nbytes + 8 * take)
            try:
                if file_number != self.file_number:
                    self._open(file_number)
                assert self.dataset is not None
                self.dataset.resize(in_file + take, axis=0)
                self.dataset[in_file : in_file + take] = chunk
                if self.index_ds is not None:
                    self.index_ds.resize(in_file + take, axis=0)
                    self.index_ds[in_file : in_file + take] = indices[done : done + take]
            except Exception:
                self._abandon()
                raise
            done += take
            self.nb_saved += take
            if self.nb_saved % self.per_file == 0:
                self.close()

    def _abandon(self) -> None:
        """A write failed inside HDF5: the file's objects are kept, never touched again."""
        keep_broken(self.file, self.dataset, self.index_ds)
        self.file = self.dataset = self.index_ds = None
        self.file_number = -1

    def close(self) -> None:
        """Close the current file; its references are dropped even when closing fails (disk
        full), so that nothing touches a broken HDF5 file again."""
        f, dataset, index_ds = self.file, self.dataset, self.index_ds
        self.file = self.dataset = self.index_ds = None
        self.file_number = -1 if self.nb_saved % self.per_file == 0 else self.file_number
        if f is not None:
            try:
                f.close()
            except Exception:
                keep_broken(f, dataset, index_ds)
                raise
