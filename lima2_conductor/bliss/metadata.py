"""``det.masterfile_metadata``: what the master file's detector group says of the detector.

As Bliss's Lima2 controller: with ``extended_det_info``, the ``detector_information`` of
the master file is the detector's ``det_info``, plus what the detector plugin adds
(:meth:`~lima2_conductor.bliss.detectors.DetectorPlugin.additional_det_info`), plus
``user_defined_det_info`` (each overriding the one before). One difference: here
``user_defined_det_info`` is written even without ``extended_det_info`` (Bliss's
ignores it then). Sent as Prepare's top-level ``masterfile_metadata``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..core.nexus_tree import bad_name
from .settings import SettingsGroup


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"extended_det_info must be True or False, not {value!r}")
    return value


def _json_dict(value: Any) -> dict[str, Any]:
    """A JSON object whose keys can name HDF5 entries; refused here, named, rather than
    at the next Prepare."""
    if not isinstance(value, Mapping):
        raise TypeError(f"user_defined_det_info must be a dict, not {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"user_defined_det_info must be JSON (str keys, numbers, strings, lists): {exc}") from None
    bad = bad_name(value, "user_defined_det_info")
    if bad is not None:
        raise ValueError(f"{bad[0]}: {bad[1]!r} cannot name an HDF5 entry (non-empty, no '/')")
    return dict(value)


class MasterfileMetadata(SettingsGroup):
    """``det.masterfile_metadata``: ``extended_det_info`` (bool) and
    ``user_defined_det_info`` (dict, replaced by assignment), persisted in Beacon."""

    _defaults = {"extended_det_info": False, "user_defined_det_info": {}}
    _checks = {"extended_det_info": _strict_bool, "user_defined_det_info": _json_dict}

    def __getattr__(self, name: str) -> Any:
        value = super().__getattr__(name)
        return dict(value) if isinstance(value, dict) else value  # never the shared default


def masterfile_metadata(
    det_info: dict[str, Any], extended: bool, additional: dict[str, Any], user: dict[str, Any]
) -> dict[str, Any] | None:
    """Prepare's ``masterfile_metadata``; None when the master file keeps the conductor's
    own det_info."""
    if not extended and not user:
        return None
    info = {**det_info, **(additional if extended else {}), **user}
    return {"detector_information": info}
