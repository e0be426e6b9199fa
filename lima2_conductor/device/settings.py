"""The conductor's memorized settings: the typed defaults of the next Prepare."""

from __future__ import annotations

import logging
import os
from typing import Any

import tango

from ..backend.database import DATABASE, tango_host
from ..core.errors import DeviceOffline, ParamError
from ..core.lima2 import ACQ_LIMITS, DEFAULT_FILENAME_FORMAT, DEFAULT_FILENAME_SUFFIX, SECONDS_TO_US, TRIGGER_MODES
from ..core.saving_names import check_names
from .attributes import Setting
from .specs import FRAMES

logger = logging.getLogger(__name__)


def _seconds(key: str) -> tuple[float, float]:
    """The range of a Lima2 time (us) in seconds, so that every value in it rounds into it."""
    low, high = ACQ_LIMITS[key]
    return low / SECONDS_TO_US, high / SECONDS_TO_US


def _file_name(v: str) -> str:
    bad = not v or "/" in v or any(ord(c) < 32 for c in v)
    if bad:
        return f"{v!r} must be a non-empty file name (no '/', no control characters)"
    return _makes_file_names(v)


def _directory(v: str) -> str:
    if any(ord(c) < 32 for c in v) or not os.path.isabs(v):
        return f"{v!r} must be an absolute path without control characters"
    return ""


def _makes_file_names(prefix: str) -> str:
    """What the Prepare's own check of the saving names (:func:`check_names`) says of
    ``prefix`` with the Lima2 default file names: a prefix it refuses is never stored."""
    channel = {
        "enabled": True,
        "base_path": "/",
        "filename_prefix": prefix,
        "filename_format": DEFAULT_FILENAME_FORMAT,
        "filename_suffix": DEFAULT_FILENAME_SUFFIX,
    }
    try:
        check_names({"saving": channel}, 1, 1)
    except ParamError as exc:
        return f"cannot make file names: {exc}"
    return ""


SETTINGS: list[Setting] = [
    Setting(
        "acq_nb_frames",
        int,
        10,
        "Frames",
        "Frames of the next Prepare (0 = endless, until Stop)",
        FRAMES,
        "%d",
        limits=ACQ_LIMITS["nb_frames"],
    ),
    Setting(
        "acq_expo_time",
        float,
        0.001,
        "Exposure time",
        "Exposure time of the next Prepare (the Lima2 devices count whole microseconds)",
        "s",
        "%.6f",
        limits=_seconds("expo_time"),
    ),
    Setting(
        "acq_latency_time",
        float,
        0.0,
        "Latency time",
        "Latency time of the next Prepare (the Lima2 devices count whole microseconds)",
        "s",
        "%.6f",
        limits=_seconds("latency_time"),
    ),
    Setting(
        "acq_trigger_mode",
        tango.DevEnum,
        0,
        "Trigger mode",
        "Trigger mode of the next Prepare",
        check=lambda v: "" if 0 <= v < len(TRIGGER_MODES) else f"must be 0..{len(TRIGGER_MODES) - 1}",
        enum_labels=[m.upper() for m in TRIGGER_MODES],
    ),
    Setting("saving_enabled", bool, False, "Saving", "Save frames in the next acquisition"),
    Setting("saving_directory", str, "/tmp", "Saving directory", "Directory of the saved files", check=_directory),
    Setting("saving_prefix", str, "lima2", "Saving prefix", "File name prefix of the saved files", check=_file_name),
    Setting(
        "latency_time",
        float,
        0.0,
        "Latency time",
        "Latency time of the next Prepare (the Lima2 devices count whole microseconds)",
        "s",
        "%.6f",
        limits=_seconds("latency_time"),
        alias_of="acq_latency_time",
    ),
]
SETTING_NAMES = [s.name for s in SETTINGS if not s.alias_of]


def show_set_points(device: Any, key: str, value: Any) -> None:
    """Every attribute of setting ``key`` (its Lima1 alias too) shows ``value`` as its set point."""
    attrs = device.get_device_attr()
    for setting in SETTINGS:
        if setting.key == key:
            attrs.get_w_attr_by_name(setting.name).set_write_value(value)


def _memorized_text(value: Any) -> str:
    """A value as Tango memorizes it (``__value`` attribute property)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


async def persist(device: Any, key: str, value: Any) -> None:
    """Write the memorized value of setting ``key`` to the Tango database before the device
    applies it: ``DEVICE_OFFLINE`` naming ``TANGO_HOST`` when the database cannot take it.

    Tango memorizes a written value only after the write method returned: with the
    database down the client got ``API_CantConnectToDatabase`` while the device had
    applied the value, and the next start restored the old one. Written here first, a
    value is either refused (nothing changes) or persisted. The Lima1 alias
    ``latency_time`` (not memorized itself) persists ``acq_latency_time`` this way too.
    Values Tango restores at start or Init come from the database: not written back."""
    util = tango.Util.instance()
    name = device.get_name()
    if not tango.Util._UseDb or util.is_svr_starting() or util.is_device_restarting(name):
        return

    try:
        await DATABASE.put_device_attribute_property(name, key, "__value", [_memorized_text(value)])
    except (tango.DevFailed, DeviceOffline) as exc:
        host = tango_host()
        why = exc.args[0].desc if isinstance(exc, tango.DevFailed) else str(exc)
        logger.warning("%s not changed: the Tango database (%s) did not take it: %s", key, host, why)
        tango.Except.throw_exception(
            "DEVICE_OFFLINE",
            f"{name}: {key} not changed: the Tango database ({host}) is unreachable, and a value it does not "
            "memorize would be lost at the next restart",
            key,
        )
