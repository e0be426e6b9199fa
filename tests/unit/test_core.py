"""The pure core: state rules, parameters, the Lima2 vocabulary kept in one place."""

from __future__ import annotations

import ast
import functools
import pathlib
import pickle
import re
import subprocess
import sys

import pytest

from lima2_conductor.core import lima2
from lima2_conductor.core.errors import ParamError
from lima2_conductor.core.lima2 import DeviceState as D
from lima2_conductor.core.params import build_prepare_params, check_saving, deep_merge, parse_json_object
from lima2_conductor.core.progress import aggregate
from lima2_conductor.core.state import RunState, SystemState, tango_state_name
from lima2_conductor.simulator.schemas import acq_params_schema, proc_params_schema


def parse(path: pathlib.Path) -> ast.Module:
    return _trees()[str(path)]


@functools.cache
def _trees() -> dict[str, ast.Module]:
    """Every source file of the package parsed in a fresh interpreter: after greenlet
    switching (gevent, used by earlier test modules) CPython 3.11's AST constructor fails
    its recursion check ("AST constructor recursion depth mismatch")."""
    script = (
        "import ast, pathlib, pickle, sys\n"
        "root = pathlib.Path(sys.argv[1])\n"
        "trees = {str(p): ast.parse(p.read_text()) for p in root.rglob('*.py')}\n"
        "sys.stdout.buffer.write(pickle.dumps(trees))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(PACKAGE)], capture_output=True, check=True)
    return pickle.loads(done.stdout)


CORE = pathlib.Path(__file__).resolve().parents[2] / "lima2_conductor" / "core"
PACKAGE = CORE.parent


def test_core_never_imports_tango() -> None:
    for path in CORE.glob("*.py"):
        for node in ast.walk(parse(path)):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n == "tango" or n.startswith("tango.") for n in names), path


@pytest.mark.parametrize(
    "states, expected",
    [
        ([D.IDLE, D.IDLE], SystemState.IDLE),
        ([D.STOPPED, D.IDLE], SystemState.IDLE),
        ([D.PREPARED, D.PREPARED], SystemState.PREPARED),
        ([D.PREPARED, D.IDLE], SystemState.IDLE),
        ([D.RUNNING, D.IDLE], SystemState.RUNNING),
        ([D.RUNNING, D.STOPPED], SystemState.RUNNING),
        ([D.RUNNING, D.FAULT], SystemState.FAULT),
        ([D.TERMINATE, D.IDLE], SystemState.FAULT),
        ([D.FAULT, D.OFFLINE], SystemState.DISCONNECTED),
        ([D.RUNNING, D.PREPARED], SystemState.UNKNOWN),
        ([], SystemState.UNKNOWN),
    ],
)
def test_system_state_rules(states: list[D], expected: SystemState) -> None:
    assert SystemState.from_device_states(states) == expected


def test_tango_state_mapping() -> None:
    assert tango_state_name(SystemState.IDLE, RunState.IDLE, initialising=True) == "INIT"
    assert tango_state_name(SystemState.PREPARED, RunState.PREPARED) == "STANDBY"
    assert tango_state_name(SystemState.IDLE, RunState.WAITING_FOR_PROC) == "RUNNING"
    assert tango_state_name(SystemState.DISCONNECTED, RunState.FAULT) == "DISABLE"
    assert tango_state_name(SystemState.IDLE, RunState.FAULT) == "FAULT"
    assert tango_state_name(SystemState.UNKNOWN, RunState.IDLE) == "UNKNOWN"


def test_aggregate() -> None:
    out = aggregate([("a", {"n": 3, "m": 1}), ("b", {"n": 5})])
    assert out["n"] == {"sum": 8, "min": 3, "max": 5, "per_receiver": {"a": 3, "b": 5}}
    assert out["m"]["min"] == 0


def test_build_prepare_params_merges_and_validates() -> None:
    acq, proc = acq_params_schema(64, 64), proc_params_schema()
    overrides = {"control": {"acq": {"nb_frames": 7}}, "processing": {"saving": {"enabled": True}}}
    ctl, rcv, prc = build_prepare_params(
        {"processing": {"saving": {"nb_frames_per_file": 3}}}, acq, acq, proc, overrides
    )
    assert ctl["acq"]["nb_frames"] == 7 and rcv == ctl
    assert prc["saving"]["enabled"] is True and prc["saving"]["nb_frames_per_file"] == 3
    with pytest.raises(ParamError, match=r"\$\.acq\.expo_time"):
        build_prepare_params({"control": {"acq": {"expo_time": 0}}}, acq, acq, proc)
    with pytest.raises(ParamError, match="allowed keys"):
        build_prepare_params({"ctl": {}}, acq, acq, proc)


def test_deep_merge() -> None:
    base = {"a": {"b": 1, "c": [1]}, "d": 2}
    out = deep_merge(base, {"a": {"b": 5}, "e": {"f": 1}})
    assert out == {"a": {"b": 5, "c": [1]}, "d": 2, "e": {"f": 1}}
    assert base == {"a": {"b": 1, "c": [1]}, "d": 2}  # untouched
    out["a"]["c"].append(2)
    assert base["a"]["c"] == [1]  # copies, not references


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"control": {"acq": {"expo_time": NaN}}}', "NaN"),
        ('{"control": {"acq": {"expo_time": Infinity}}}', "Infinity"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply|must be a JSON object"),
        ("{", "not valid JSON"),
        ("[1]", "must be a JSON object"),
    ],
)
def test_bad_json_is_a_param_error(text: str, match: str) -> None:
    with pytest.raises(ParamError, match=match):
        parse_json_object(text, "params")


@pytest.mark.parametrize(
    "field, value",
    [
        ("filename_suffix", ".h5" + chr(0)),
        ("filename_prefix", "a" + chr(0) + "b"),
        ("base_path", "/tmp/" + chr(7) + "x"),
        ("filename_prefix", "a/b"),
        ("filename_format", "{nope}"),
    ],
)
def test_saving_fields_that_cannot_name_a_file(field: str, value: str) -> None:
    proc = lima2_defaults()
    proc["saving"][field] = value
    with pytest.raises(ParamError, match=field):
        check_saving(proc)


def lima2_defaults() -> dict:
    from lima2_conductor.core.params import defaults_from_schema

    return defaults_from_schema(proc_params_schema())


EXACT_NAMES = [*lima2.TRIGGER_MODES, lima2.RANDOM_DISPATCH]  # plain words: only a string equal to one counts
LIMA2_NAMES = [
    *lima2.PIXEL_TYPES,
    *lima2.PIPELINES,
    lima2.DEFAULT_FILENAME_FORMAT,
    lima2.LIMA_ERROR_REASON,
    "popRoiStatistics",
    "popRoiProfiles",
    "popFrameIdx",
    "getInputFrame",
    "limaprocessing",
    "processed_frame_info",
    "input_frame_info",
    "vector_info",
    "getSparseFrame",
    "getAccCorrected",
    "getAccPeaks",
    "getAccumulatedFrame",
    "getFaiAverint",
    "popPeakCounters",
    "popFillFactors",
    lima2.SPARSE_FRAME,
    lima2.SMX_SPARSE_FRAME,
    lima2.CORE_VERSION,
]


def test_lima2_names_are_spelled_once() -> None:
    """Outside ``core/lima2.py`` no string literal spells a Lima2 name."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path == CORE / "lima2.py":
            continue
        tree = parse(path)
        docs = {id(n.body[0].value) for n in ast.walk(tree) if _has_docstring(n)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if node.value in EXACT_NAMES:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
                for name in LIMA2_NAMES:
                    if re.search(rf"(?<![\w{{]){re.escape(name)}(?![\w}}])", node.value):
                        offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name!r}")
    assert not offenders, "\n".join(offenders)


def _has_docstring(node: ast.AST) -> bool:
    body = getattr(node, "body", None)
    return (
        isinstance(body, list)
        and bool(body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )


def test_no_topology_isinstance_outside_topology() -> None:
    names = {"SingleReceiver", "RoundRobin", "DynamicDispatch", "StaticLocator", "FrameTable"}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "topology.py":
            continue
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                used = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                assert not used & names, f"{path}:{node.lineno}"
