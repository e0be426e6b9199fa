"""Parameter dictionaries: defaults from JSON schemas, deep merge, validation."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonschema

from . import lima2
from .errors import ParamError
from .saving_names import check_names

MAX_JSON_LENGTH = 4 * 1024 * 1024


def parse_json_object(text: str | bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object, with the parse position in the error."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if len(text) > MAX_JSON_LENGTH:
        raise ParamError(f"{what}: {len(text)} characters is more than the {MAX_JSON_LENGTH} allowed")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ParamError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        ) from None
    except RecursionError:
        raise ParamError(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise ParamError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _reject_constant(name: str) -> Any:
    raise ParamError(f"{name} is not a number: JSON params take finite numbers only")


def defaults_from_schema(schema: Mapping[str, Any]) -> Any:
    """Build the default instance of a schema from its ``default`` values."""
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    if schema.get("type") == "object" or "properties" in schema:
        return {name: defaults_from_schema(sub) for name, sub in schema.get("properties", {}).items()}
    if schema.get("type") == "array":
        return []
    return None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in, dicts recursively, the rest replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def json_path(path: Any) -> str:
    """``["acq", "nb_frames"]`` -> ``$.acq.nb_frames``; list indices as ``[i]``."""
    out = "$"
    for item in path:
        out += f"[{item}]" if isinstance(item, int) else f".{item}"
    return out


@lru_cache(maxsize=32)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def validate(instance: Any, schema: Mapping[str, Any] | str, what: str) -> None:
    """Validate against a JSON schema; the error names the JSON path and what is allowed."""
    schema_json = schema if isinstance(schema, str) else json.dumps(schema, sort_keys=True)
    error = jsonschema.exceptions.best_match(_validator(schema_json).iter_errors(instance))
    if error is None:
        return
    where = json_path(error.absolute_path)
    allowed = ""
    if error.validator == "enum":
        allowed = f" (allowed: {', '.join(map(str, error.validator_value))})"
    elif error.validator == "additionalProperties":
        props = sorted(error.schema.get("properties", {}))
        allowed = f" (allowed keys: {', '.join(props)})"
    raise ParamError(f"{what} {where}: {error.message}{allowed}")


TOP_LEVEL_KEYS = ("control", "receiver", "processing", "masterfile_metadata")


def build_prepare_params(
    user: dict[str, Any],
    control_schema: Mapping[str, Any],
    receiver_schema: Mapping[str, Any],
    proc_schema: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Control, receiver and processing params of a Prepare, validated.

    Each part is the schema defaults, then ``overrides`` (the conductor's convenience
    attributes, same layout as ``user``), then the user's partial dict, deep-merged.
    The receivers get the control's params unless ``user`` has ``receiver``.
    """
    unknown = sorted(set(user) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ParamError(f"params: unknown key(s) {', '.join(unknown)} (allowed keys: {', '.join(TOP_LEVEL_KEYS)})")
    for key in TOP_LEVEL_KEYS:
        if key in user and not isinstance(user[key], dict):
            raise ParamError(f"params $.{key} must be an object, not {type(user[key]).__name__}")
    overrides = overrides or {}
    ctl = deep_merge(defaults_from_schema(control_schema), overrides.get("control", {}))
    ctl = deep_merge(ctl, user.get("control", {}))
    validate(ctl, control_schema, "control params")
    if "receiver" in user:
        rcv = deep_merge(defaults_from_schema(receiver_schema), overrides.get("control", {}))
        rcv = deep_merge(rcv, user["receiver"])
    else:
        rcv = copy.deepcopy(ctl)
    validate(rcv, receiver_schema, "receiver params")
    proc = deep_merge(defaults_from_schema(proc_schema), overrides.get("processing", {}))
    proc = deep_merge(proc, user.get("processing", {}))
    validate(proc, proc_schema, "processing params")
    return ctl, rcv, proc


_PATH_FIELDS = ("base_path", "filename_prefix", "filename_suffix", "filename_format")
_NAME_FIELDS = ("filename_prefix", "filename_suffix", "nx_entry_name", "nx_instrument_name", "nx_detector_name")


def check_saving(proc: Mapping[str, Any], nb_receivers: int = 1, local_frames: int = 0) -> None:
    """Refuse saving fields that cannot make a file name: control characters (NUL...) in
    any of them, a ``/`` in a name, a ``filename_format`` that does not format; then the
    names themselves (:func:`saving_names.check_names`) for ``nb_receivers`` receivers
    that get at most ``local_frames`` frames each (0: endless)."""
    for key, channel in proc.items():
        if not isinstance(channel, Mapping) or "base_path" not in channel:
            continue
        for name in (*_PATH_FIELDS, *_NAME_FIELDS):
            value = channel.get(name)
            if not isinstance(value, str):
                continue
            bad = [c for c in value if ord(c) < 32 or ord(c) == 127]
            if bad:
                raise ParamError(f"processing params $.{key}.{name}: {value!r} has a control character ({bad[0]!r})")
            if name in _NAME_FIELDS and "/" in value:
                raise ParamError(f"processing params $.{key}.{name}: {value!r} must not contain '/'")
        try:
            lima2.data_file_name(channel, 0, 0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ParamError(f"processing params $.{key}.filename_format: cannot format it ({exc!r})") from None
    check_names(proc, nb_receivers, local_frames)


def settings_overrides(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The conductor's typed settings (``acq_*`` in seconds, ``saving_*``) as a partial
    Prepare params dict (Lima2 times in microseconds, trigger mode by name)."""
    return {
        "control": {
            "acq": {
                "nb_frames": int(settings["acq_nb_frames"]),
                "expo_time": round(settings["acq_expo_time"] * lima2.SECONDS_TO_US),
                "latency_time": round(settings["acq_latency_time"] * lima2.SECONDS_TO_US),
                "trigger_mode": lima2.TRIGGER_MODES[int(settings["acq_trigger_mode"])],
            }
        },
        "processing": {
            "saving": {
                "enabled": bool(settings["saving_enabled"]),
                "base_path": settings["saving_directory"],
                "filename_prefix": settings["saving_prefix"],
            }
        },
    }
