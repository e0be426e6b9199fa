"""Publishing a master file: renamed complete, and never over a file that is not the run's own.

A master file is written under a temporary name beside its path, then renamed, so it
exists only complete. Unless ``file_exists_policy`` is ``overwrite``, the rename never
replaces a file that is not this run's own master file (one that appeared at its path
during the run): the check and the rename are one system call (``renameat2`` with
``RENAME_NOREPLACE``, or ``RENAME_EXCHANGE`` to look at what was there), so no file can
slip in between; where the kernel or the filesystem lacks them, hard links do the same.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import SavingError

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


def temp_beside(path: str) -> str:
    """A new short name in the master file's directory: it stays within NAME_MAX whatever
    the master file's name, and is renamed within one filesystem."""
    return os.path.join(os.path.dirname(path), f".master-{os.getpid()}-{secrets.token_hex(6)}.tmp")


@contextmanager
def published(path: str, uuid: str, overwrite: bool) -> Iterator[str]:
    """A temporary name beside ``path`` to write the complete file under, published at
    ``path`` (:func:`publish`) when the block ends, removed if anything fails: a master
    file exists only complete."""
    tmp = temp_beside(path)
    try:
        yield tmp
        publish(tmp, path, uuid, overwrite)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
