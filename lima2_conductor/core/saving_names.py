"""Every file name a run will make, checked at Prepare before any device is prepared.

A name that two receivers (or two files, or two saving channels) share loses frames
silently (the last writer wins, the run still ends DONE); a name with a path separator
writes outside ``base_path``; a name longer than the filesystem allows fails only once
frames arrive, on every receiver. So the names are made here as the devices and the
master file will make them, and refused when they cannot all be distinct, plain file
names of ``base_path`` (absolute) within the filesystem's limits.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from . import lima2
from .errors import ParamError

NAME_MAX = 255
"""Bytes in one path component when ``base_path`` does not exist (yet) to ask its filesystem."""
PATH_MAX = 4096
"""Bytes in a whole path, terminating NUL included, likewise."""
HEAD_FILES = 256
"""Each receiver's first files are all compared; beyond, a sample (see :func:`file_indices`)."""
TAIL_FILES = 16
ENDLESS_FILES = 10**9
"""File count assumed for an endless run (``nb_frames = 0``)."""
REFUSED_POLICIES = {
    "append": "Lima2 does not define appending to existing HDF5 files and its own conductor "
    "refuses an existing master file under it as under 'abort'; use 'abort' (keep existing "
    "files, refuse the run) or 'overwrite'"
}
"""``file_exists_policy`` values the schema offers that no run can honour."""


def files_per_receiver(local_frames: int, per_file: int) -> int:
    """Files one receiver writes for at most ``local_frames`` frames (0: endless)."""
    if local_frames <= 0:
        return ENDLESS_FILES
    return max(1, -(-local_frames // max(1, per_file)))


def file_indices(nb_files: int, start_number: int) -> list[int]:
    """File indices whose names are compared: all of them when few; else the first
    ``HEAD_FILES``, the last ``TAIL_FILES`` and those around each change of the file
    number's digit count, where an unpadded number can run into what follows it."""
    if nb_files <= HEAD_FILES + TAIL_FILES:
        return list(range(nb_files))
    out = set(range(HEAD_FILES)) | set(range(nb_files - TAIL_FILES, nb_files))
    power = 10
    while power - start_number <= nb_files:
        out.update(k for k in (power - start_number - 1, power - start_number) if 0 <= k < nb_files)
        power *= 10
    return sorted(out)


def fs_limits(base_path: str) -> tuple[int, int]:
    """``(NAME_MAX, PATH_MAX)`` of the filesystem of ``base_path``, or the usual Linux ones."""
    try:
        return int(os.pathconf(base_path, "PC_NAME_MAX")), int(os.pathconf(base_path, "PC_PATH_MAX"))
    except (OSError, ValueError):
        return NAME_MAX, PATH_MAX


def check_names(proc: Mapping[str, Any], nb_receivers: int = 1, local_frames: int = 0) -> None:
    """``ParamError`` naming the rule and the field when an enabled saving channel of
    ``proc``, with ``nb_receivers`` receivers that each get at most ``local_frames``
    frames (0: endless), would make a file name that is not a plain, distinct, short enough name in
    an absolute ``base_path``; master files obey the same rules."""
    taken: dict[tuple[str, str], str] = {}  # (directory, name) -> what makes it
    for key, channel in proc.items():
        if not isinstance(channel, Mapping) or "base_path" not in channel or not channel.get("enabled"):
            continue
        where = f"processing params $.{key}"
        policy = channel.get("file_exists_policy")
        if policy in REFUSED_POLICIES:
            raise ParamError(f"{where}.file_exists_policy: {policy!r} is not supported: {REFUSED_POLICIES[policy]}")
        base = str(channel["base_path"])
        if not os.path.isabs(base):
            raise ParamError(f"{where}.base_path: {base!r} must be an absolute path")
        name_max, path_max = fs_limits(base)
        directory = os.path.normpath(base)
        master = lima2.master_file_name(channel)
        _check_name(where, channel, master, "the master file", base, name_max, path_max, master=True)
        _claim(taken, where, directory, master, f"{where} master file")
        per_file = int(channel.get("nb_frames_per_file") or 1)
        nb_files = files_per_receiver(local_frames, per_file)
        start = int(channel.get("start_number", 0))
        for rank, idx in _pairs(range(nb_receivers), file_indices(nb_files, start)):
            try:
                name = lima2.data_file_name(channel, rank, idx)
            except (KeyError, IndexError, ValueError) as exc:
                raise ParamError(f"{where}.filename_format: cannot format it ({exc!r})") from None
            what = f"rank {rank} file {start + idx}"
            _check_name(where, channel, name, what, base, name_max, path_max)
            _claim(taken, where, directory, name, f"{where} {what}")


def _pairs(ranks: Iterable[int], indices: list[int]) -> Iterable[tuple[int, int]]:
    for rank in ranks:
        for idx in indices:
            yield rank, idx


def _claim(taken: dict[tuple[str, str], str], where: str, directory: str, name: str, what: str) -> None:
    other = taken.setdefault((directory, name), what)
    if other != what:
        field = "filename_prefix" if "master" in f"{other} {what}" else "filename_format"
        raise ParamError(
            f"{where}.{field}: {other} and {what} would both be {name!r}: each (rank, file number) "
            "needs its own file (use {filename_rank} and {file_number...} in the format, and a "
            "filename_prefix of its own for each saving channel)"
        )


def _check_name(
    where: str,
    channel: Mapping[str, Any],
    name: str,
    what: str,
    base: str,
    name_max: int,
    path_max: int,
    master: bool = False,
) -> None:
    """One name: plain (no separator, not absolute, not ``.``/``..``), short enough."""
    fields = ("filename_prefix",) if master else ("filename_format", "filename_suffix", "filename_prefix")
    if os.path.isabs(name):
        raise ParamError(f"{where}.{_culprit(channel, fields, os.sep)}: {what} would be {name!r}, an absolute path")
    seps = [sep for sep in (os.sep, os.altsep) if sep]
    if any(sep in name for sep in seps) or name in ("", ".", ".."):
        raise ParamError(
            f"{where}.{_culprit(channel, fields, os.sep)}: {what} would be {name!r}: a file name of base_path "
            "has no path separator and is not '', '.' or '..'"
        )
    size = len(os.fsencode(name))
    if size > name_max:
        raise ParamError(
            f"{where}.{_longest(channel, fields)}: {what} would be a {size}-byte name, more than the "
            f"{name_max} bytes the filesystem allows"
        )
    size = len(os.fsencode(os.path.join(base, name))) + 1
    if size > path_max:
        raise ParamError(
            f"{where}.{_longest(channel, ('base_path', *fields))}: the path of {what} would be {size} bytes, "
            f"more than the {path_max} the filesystem allows"
        )


def _culprit(channel: Mapping[str, Any], fields: tuple[str, ...], needle: str) -> str:
    """The first field whose value holds ``needle`` (the format when none does)."""
    for name in fields:
        if needle in str(channel.get(name) or ""):
            return name
    return fields[0]


def _longest(channel: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    return max(fields, key=lambda name: len(str(channel.get(name) or "")))
