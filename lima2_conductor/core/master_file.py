"""The master file: one HDF5 virtual dataset restoring global frame order.

Layout is the official conductor's, so its readers open ours unchanged:
``{base_path}/{filename_prefix}_master.h5``, the virtual dataset at
``<entry>/<instrument>/<detector>/data`` (``interpretation = "image"``), links
``<entry>/measurement/data`` and ``<detector>/plot/data``, NeXus classes, and the
acquisition params, processing params, ``det_info`` and the Prepare's
``masterfile_metadata`` as nested groups under the detector. Added: ``conductor/`` with the UUID, topology, frame count and a per-file
mapping table (file, first global frame, step, count).

With round robin each receiver file is one **strided** hyperslab of the virtual
dataset (``start:stop:N``), not one mapping per frame. The file is written in a
thread, under a temporary name, then renamed: a master file exists only complete.
Unless ``file_exists_policy`` is ``overwrite``, the rename never replaces a file that is
not this run's own master file (one that appeared at its path during the run): the
check and the rename are one system call, so no file can slip in between.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from . import lima2
from .errors import SavingError
from .nexus_tree import write_tree
from .topology import FileMapping, FileNamer, Locator


@dataclass(frozen=True)
class Saving:
    """The saving parameters of one channel that the master file needs."""

    params: dict[str, Any]

    @staticmethod
    def from_params(saving: dict[str, Any]) -> Saving:
        return Saving(dict(saving))

    @property
    def base_path(self) -> str:
        return str(self.params["base_path"])

    @property
    def nb_frames_per_file(self) -> int:
        return int(self.params["nb_frames_per_file"])

    @property
    def nb_dimensions(self) -> str:
        return str(self.params["nb_dimensions"])

    @property
    def entry(self) -> str:
        return str(self.params["nx_entry_name"])

    @property
    def instrument(self) -> str:
        return str(self.params["nx_instrument_name"])

    @property
    def detector(self) -> str:
        return str(self.params["nx_detector_name"])

    @property
    def master_path(self) -> str:
        return os.path.join(self.base_path, lima2.master_file_name(self.params))

    @property
    def data_path(self) -> str:
        return lima2.frames_dataset(self.params)

    @property
    def overwrite(self) -> bool:
        """Whether the master file may replace any file at its path."""
        return self.params.get("file_exists_policy", "abort") == "overwrite"

    def file_name(self, rank: int, file_idx: int) -> str:
        return lima2.data_file_name(self.params, rank, file_idx)

    def check_target(self) -> None:
        """Refuse at Prepare a master file that could not be written."""
        if not os.path.isdir(self.base_path):
            raise SavingError(f"saving directory {self.base_path!r} does not exist")
        if not os.access(self.base_path, os.W_OK | os.X_OK):
            raise SavingError(f"saving directory {self.base_path!r} is not writable")
        policy = self.params.get("file_exists_policy", "abort")
        if os.path.exists(self.master_path) and policy != "overwrite":
            raise SavingError(f"{self.master_path} exists and file_exists_policy is {policy!r}")


def gapped_layout(
    locator: Locator, saved: Sequence[int], per_file: int, name: FileNamer
) -> tuple[int, list[FileMapping], list[int]]:
    """Frame count, file mappings and missing frames of **every** saved frame (not only
    the contiguous prefix): up to the last frame any receiver saved; the frames in
    between that no receiver saved are missing (the virtual dataset's fill value)."""
    return locator.saved_mappings(saved, per_file, name)


def layout(locator: Locator, saved: list[int], saving: Saving) -> tuple[int, list[FileMapping]]:
    """Frame count and file mappings of the contiguous prefix of saved frames."""
    return locator.file_mappings(saved, saving.nb_frames_per_file, saving.file_name)


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
    tmp = _temp_beside(path)
    try:
        # HDF5 >= 1.10 formats (VDS needs 1.10 anyway): the oldest format is ~5x slower
        with h5py.File(tmp, "w", libver=("v110", "v110")) as f:
            parent = f.require_group(saving.data_path.rsplit("/", 1)[0])
            h5py.h5d.create(parent.id, b"data", h5py.h5t.py_create(dtype), vspace, dcpl=dcpl).close()
            dset = f[saving.data_path]
            dset.attrs["interpretation"] = "spectrum" if vector else "image"
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
            for key, value in metadata.get("detector", {}).items():
                write_tree(det, key, value)
            cond = entry.create_group("conductor")
            cond.attrs["NX_class"] = "NXcollection"
            cond["uuid"] = metadata.get("uuid", "")
            cond["topology"] = metadata.get("topology", "")
            cond["nb_frames"] = total
            if "missing_frames" in metadata:  # a failed run: frames no receiver saved (fill value)
                cond["missing_frames"] = np.asarray(metadata["missing_frames"], dtype="<i8")
            table = np.array(
                [(m.file.encode(), m.start, m.step, m.count) for m in mappings],
                dtype=[("file", "S256"), ("first_frame", "<i8"), ("step", "<i8"), ("count", "<i8")],
            )
            cond.create_dataset("files", data=table)
        publish(tmp, path, str(metadata.get("uuid", "")), saving.overwrite)
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


def write_sparse(path: str, saving: Saving, nb_receivers: int, metadata: dict[str, Any]) -> int:
    """The master file of a sparse source: the contiguous prefix of saved frames in global
    order, copied (not virtual) under ``<entry>/<instrument>/<detector>/data`` (a group):
    ``index`` (uint32), ``intensity``, ``frame_ptr`` (uint64, frames + 1; frame ``j`` is
    ``index[frame_ptr[j]:frame_ptr[j + 1]]``) and ``frame_idx``. Blocking; returns the
    frame count."""
    import h5py

    frames = sorted(read_sparse_files(saving, nb_receivers), key=lambda t: t[0])
    total = 0
    while total < len(frames) and frames[total][0] == total:
        total += 1
    frames = frames[:total]
    sizes = np.array([len(f[1]) for f in frames], dtype=np.uint64)
    tmp = _temp_beside(path)
    try:
        with h5py.File(tmp, "w") as f:
            group = f.require_group(saving.data_path)
            group.attrs["NX_class"] = "NXdata"
            group["index"] = np.concatenate([f_[1] for f_ in frames]).astype("<u4") if frames else np.empty(0, "<u4")
            group["intensity"] = np.concatenate([f_[2] for f_ in frames]) if frames else np.empty(0, dtype=np.uint16)
            group["frame_ptr"] = np.concatenate([[0], np.cumsum(sizes)]).astype("<u8")
            group["frame_idx"] = np.arange(total, dtype="<i8")
            entry, inst, det = (
                f[saving.entry],
                f[saving.entry][saving.instrument],
                f[saving.entry][saving.instrument][saving.detector],
            )
            f.attrs.update(
                {
                    "NX_class": "NXroot",
                    "file_name": path,
                    "creator": "lima2-tango-conductor",
                    "file_time": datetime.now(UTC).isoformat(),
                }
            )
            entry.attrs["NX_class"] = "NXentry"
            entry["program_name"] = "Conductor.MasterFile.Sparse"
            entry["program_name"].attrs["version"] = "1.0"
            cond = entry.create_group("conductor")
            cond.attrs["NX_class"] = "NXcollection"
            cond["uuid"] = metadata.get("uuid", "")
            inst.attrs["NX_class"] = "NXinstrument"
            det.attrs["NX_class"] = "NXdetector"
            f[f"{saving.entry}/measurement/data"] = group
            f[f"{saving.entry}/measurement"].attrs["NX_class"] = "NXcollection"
            for key, value in metadata.get("detector", {}).items():
                write_tree(det, key, value)
        publish(tmp, path, str(metadata.get("uuid", "")), saving.overwrite)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return total


# -- publishing a master file ----------------------------------------------------------------
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)
"""``renameat2`` errors of a kernel or filesystem without the flag."""


def _renameat2() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2()


def _rename(src: str, dst: str, flags: int) -> bool:
    """``renameat2``: True once done, False when the system cannot (then nothing moved)."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), src, None, dst)


def _rename_noreplace(src: str, dst: str) -> None:
    """Move ``src`` to ``dst``; ``FileExistsError`` (nothing moved) if ``dst`` exists.
    Without ``RENAME_NOREPLACE``: a hard link (refused as atomically), then ``src`` removed."""
    if not _rename(src, dst, _RENAME_NOREPLACE):
        os.link(src, dst)
        os.unlink(src)


def _temp_beside(path: str) -> str:
    """A new short name in the master file's directory: it stays within NAME_MAX whatever
    the master file's name, and is renamed within one filesystem."""
    return os.path.join(os.path.dirname(path), f".master-{os.getpid()}-{secrets.token_hex(6)}.tmp")


def run_of(path: str) -> str | None:
    """UUID of the run whose master file ``path`` is, or None (any other file)."""
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as f:
            for entry in f.values():
                uuid = entry.get("conductor/uuid") if isinstance(entry, h5py.Group) else None
                if uuid is not None:
                    value = uuid[()]
                    return value.decode() if isinstance(value, bytes) else str(value)
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return None


def publish(tmp: str, path: str, uuid: str, overwrite: bool) -> None:
    """Rename the complete file ``tmp`` to ``path``. Unless ``overwrite``, a file already at
    ``path`` is replaced only if it is run ``uuid``'s own (an earlier checkpoint, maybe of
    a conductor before a restart): it is swapped out in one system call and looked at
    where no one else can touch it; any other file is swapped back and the run fails
    with ``SavingError`` naming it (a file that appeared is never written over)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        _rename_noreplace(tmp, path)
        return
    except FileExistsError:
        pass
    refused = SavingError(
        f"{path} appeared during the run and file_exists_policy is not 'overwrite': the master file was not "
        "written over it (move it away, or use 'overwrite')"
    )
    if _rename(tmp, path, _RENAME_EXCHANGE):  # now path is the new master, tmp what was there
        if uuid and run_of(tmp) == uuid:
            os.unlink(tmp)
            return
        _rename(tmp, path, _RENAME_EXCHANGE)  # theirs back where it was; ours is removed by the caller
        raise refused
    # no RENAME_EXCHANGE here (NFS...): what is at path is moved aside, then looked at
    aside = f"{tmp}.old"
    os.rename(path, aside)
    if uuid and run_of(aside) == uuid:
        try:
            _rename_noreplace(tmp, path)
        except FileExistsError:
            raise refused from None
        finally:
            os.unlink(aside)
        return
    try:
        _rename_noreplace(aside, path)
    except FileExistsError:
        raise SavingError(f"{path} appeared twice during the run; the first one is now {aside}") from None
    raise refused
