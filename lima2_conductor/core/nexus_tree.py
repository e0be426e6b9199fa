"""Nested metadata (JSON-like values) written as HDF5 groups and datasets under the
master file's detector group, and the check run at Prepare so that a value HDF5 cannot
hold is refused before the run, not found when the master file is written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import ParamError

USER_METADATA_SCHEMA = {
    "type": "object",
    "description": "Written under the master file's detector group; its 'params' or"
    " 'detector_information' replace the conductor's",
}
"""The schema of Prepare's ``masterfile_metadata`` (``ParamsSchema``)."""

RESERVED = frozenset({"plot", "data"})
"""Children of the detector group the master file writes itself."""


def write_master_tree(
    f: Any, saving: Any, path: str, data: Any, program: tuple[str, str], metadata: Mapping[str, Any]
) -> tuple[Any, Any, Any, Any]:
    """The NeXus frame every master file shares, around its ``data`` (already at
    ``saving.data_path``): the root's, entry's, instrument's and detector's classes, the
    program (name, version), ``measurement/data``, the detector's metadata and the
    ``conductor`` group with the run's UUID; ``(entry, instrument, detector, conductor)``."""
    entry = f[saving.entry]
    inst = entry[saving.instrument]
    det = inst[saving.detector]
    f.attrs.update(
        {
            "NX_class": "NXroot",
            "file_name": path,
            "creator": "lima2-tango-conductor",
            "file_time": datetime.now(UTC).isoformat(),
        }
    )
    entry.attrs["NX_class"] = "NXentry"
    entry["program_name"] = program[0]
    entry["program_name"].attrs["version"] = program[1]
    inst.attrs["NX_class"] = "NXinstrument"
    det.attrs["NX_class"] = "NXdetector"
    f[f"{saving.entry}/measurement/data"] = data
    f[f"{saving.entry}/measurement"].attrs["NX_class"] = "NXcollection"
    for key, value in metadata.get("detector", {}).items():
        write_tree(det, key, value)
    cond = entry.create_group("conductor")
    cond.attrs["NX_class"] = "NXcollection"
    cond["uuid"] = metadata.get("uuid", "")
    return entry, inst, det, cond


def write_tree(group: Any, name: str, value: Any) -> None:
    """``value`` under ``group[name]``: a dict is a group (``NXcollection``), a list of
    dicts or lists a group of numbered children, a list of strings a string array, any
    other list an array, ``None`` the string ``"None"``."""
    import h5py

    if isinstance(value, Mapping):
        sub = group.create_group(name)
        sub.attrs["NX_class"] = "NXcollection"
        for k, v in value.items():
            write_tree(sub, str(k), v)
    elif isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        sub = group.create_group(name)
        sub.attrs["NX_class"] = "NXcollection"
        for i, v in enumerate(value):
            write_tree(sub, str(i), v)
    elif value is None:
        group[name] = "None"
    elif isinstance(value, list) and not value:
        group[name] = json.dumps(value)
    elif isinstance(value, list) and any(isinstance(v, str) for v in value):
        group.create_dataset(name, data=[str(v) for v in value], dtype=h5py.string_dtype())
    else:
        group[name] = value


def check_user_metadata(value: Any) -> dict[str, Any]:
    """Prepare's ``masterfile_metadata``: a JSON object whose keys are HDF5 names and whose
    values HDF5 can hold (written once into an in-memory file). Blocking."""
    import h5py

    if not isinstance(value, Mapping):
        raise ParamError(f"params $.masterfile_metadata must be an object, not {type(value).__name__}")
    _check_names(value, "$.masterfile_metadata")
    for key in value:
        if key in RESERVED:
            raise ParamError(
                f"params $.masterfile_metadata.{key}: the master file writes '{key}' itself"
                f" (reserved: {', '.join(sorted(RESERVED))})"
            )
    with h5py.File("metadata-check", "w", driver="core", backing_store=False) as f:
        for key, item in value.items():
            try:
                write_tree(f, key, item)
            except (TypeError, ValueError) as exc:
                raise ParamError(f"params $.masterfile_metadata.{key}: HDF5 cannot hold {item!r} ({exc})") from None
    return dict(value)


def _check_names(value: Any, where: str) -> None:
    bad = bad_name(value, where)
    if bad is not None:
        raise ParamError(f"params {bad[0]}: {bad[1]!r} is not an HDF5 name (non-empty, no '/', not '.' or '..')")


def bad_name(value: Any, where: str) -> tuple[str, Any] | None:
    """The first key of the nested ``value`` that cannot name an HDF5 entry, and where
    it is; ``None`` when every key can."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key or "/" in key or key in (".", ".."):
                return where, key
            bad = bad_name(item, f"{where}.{key}")
            if bad is not None:
                return bad
    elif isinstance(value, list):
        for i, item in enumerate(value):
            bad = bad_name(item, f"{where}[{i}]")
            if bad is not None:
                return bad
    return None
