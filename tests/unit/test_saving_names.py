"""Saving names checked at Prepare: distinct, plain, short enough, in an absolute base_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lima2_conductor.core import lima2
from lima2_conductor.core.errors import ParamError
from lima2_conductor.core.params import check_saving, defaults_from_schema
from lima2_conductor.core.saving_names import file_indices, files_per_receiver
from lima2_conductor.core.topology import make_topology
from lima2_conductor.simulator.schemas import proc_params_schema


def proc(tmp_path: Path, class_name: str = lima2.DEFAULT_PIPELINE, **saving: Any) -> dict[str, Any]:
    """Default processing params of ``class_name`` with every saving channel enabled in
    ``tmp_path``, each with its own prefix as the conductor's settings give them."""
    out = defaults_from_schema(proc_params_schema(class_name))
    channels = lima2.pipeline(class_name).saving_overrides(
        {"enabled": True, "base_path": str(tmp_path), "filename_prefix": "scan", **saving}
    )
    for key, channel in channels.items():
        out[key] = {**out[key], **channel}
    return out


def test_the_defaults_pass(tmp_path: Path) -> None:
    for class_name in ("LimaProcessingLegacy", "LimaProcessingSmx", "LimaProcessingXpcs", "LimaProcessingFai"):
        check_saving(proc(tmp_path, class_name), 4, 1000)
        check_saving(proc(tmp_path, class_name), 2, 0)  # endless


@pytest.mark.parametrize(
    "fmt, receivers, frames, per_file",  # frames: the most one receiver gets
    [
        ("same{filename_suffix}", 2, 6, 50),  # no rank: both receivers write same.h5
        ("{filename_prefix}_{filename_rank}{filename_suffix}", 2, 6, 2),  # no file number: rewritten
        ("{filename_prefix}_{filename_rank}{filename_suffix}", 1, 0, 50),  # endless: more than one file
        ("{filename_prefix}{filename_rank}{file_number}{filename_suffix}", 12, 2400, 1),  # rank 1 file 11 = 11, 1
        ("{filename_prefix}_{filename_rank}_{file_number!s:.2}{filename_suffix}", 1, 200, 1),  # 10 = 100
    ],
)
def test_a_format_that_cannot_give_each_rank_and_file_its_own_file(
    tmp_path: Path, fmt: str, receivers: int, frames: int, per_file: int
) -> None:
    with pytest.raises(ParamError, match=r"\$\.saving\.filename_format: .* would both be"):
        check_saving(proc(tmp_path, filename_format=fmt, nb_frames_per_file=per_file), receivers, frames)


def test_a_format_without_a_part_it_does_not_need_passes(tmp_path: Path) -> None:
    one_file = proc(tmp_path, filename_format="{filename_prefix}_{filename_rank}{filename_suffix}")
    check_saving(one_file, 2, 50)  # 50 frames each, 50 a file
    one_receiver = proc(tmp_path, filename_format="{filename_prefix}_{file_number}{filename_suffix}")
    check_saving(one_receiver, 1, 0)


def test_dynamic_dispatch_may_give_every_frame_to_one_receiver(tmp_path: Path) -> None:
    p = proc(tmp_path, filename_format="{filename_prefix}_{filename_rank}{filename_suffix}", nb_frames_per_file=60)
    check_saving(p, 2, make_topology("round_robin", 2).max_local_frames(100))  # 50 frames each: one file
    with pytest.raises(ParamError, match="would both be"):
        check_saving(p, 2, make_topology("dynamic", 2).max_local_frames(100))


def test_channels_of_one_pipeline_must_not_share_files(tmp_path: Path) -> None:
    """The per-source prefixes keep SMX's channels apart, unless the format drops the prefix."""
    check_saving(proc(tmp_path, "LimaProcessingSmx"), 2, 100)
    fmt = "data_{filename_rank}_{file_number:05d}{filename_suffix}"
    with pytest.raises(ParamError, match=r"\$\.saving_sparse\.filename_format: .*saving_dense.*would both be"):
        check_saving(proc(tmp_path, "LimaProcessingSmx", filename_format=fmt), 2, 100)


def test_a_data_file_may_not_take_the_master_file_name(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match=r"filename_prefix: .*master file.*would both be 'scan_master.h5'"):
        check_saving(proc(tmp_path, filename_format="{filename_prefix}_master{filename_suffix}"), 1, 1)


@pytest.mark.parametrize(
    "fields, rule",
    [
        (
            {"filename_format": "../esc_{filename_prefix}_{filename_rank}_{file_number:05d}{filename_suffix}"},
            "separator",
        ),
        ({"filename_format": "sub/{filename_prefix}_{filename_rank}_{file_number:05d}{filename_suffix}"}, "separator"),
        ({"filename_format": "/elsewhere/{filename_prefix}_{filename_rank}_{file_number}.h5"}, "absolute"),
        ({"filename_format": "..", "nb_frames_per_file": 1000}, "'\\.\\.'"),
    ],
)
def test_a_name_that_leaves_base_path(tmp_path: Path, fields: dict[str, Any], rule: str) -> None:
    field = next(iter(fields))
    with pytest.raises(ParamError, match=rf"\$\.saving\.{field}: .*{rule}"):
        check_saving(proc(tmp_path, **fields), 1, 10)


@pytest.mark.parametrize("length", [250, 300])
def test_a_name_longer_than_the_filesystem_allows(tmp_path: Path, length: int) -> None:
    with pytest.raises(ParamError, match=r"\$\.saving\.filename_prefix: .*-byte name, more than the 255 bytes"):
        check_saving(proc(tmp_path, filename_prefix="p" * length), 2, 10)


def test_the_longest_names_that_fit(tmp_path: Path) -> None:
    """255 bytes: the data files (prefix + ``_1_00000.h5``) and the master file fit."""
    check_saving(proc(tmp_path, filename_prefix="p" * 244), 2, 10)
    with pytest.raises(ParamError, match="rank 0 file 0 would be a 256-byte name"):
        check_saving(proc(tmp_path, filename_prefix="p" * 245), 2, 10)
    check_saving(proc(tmp_path, filename_prefix="é" * 120), 2, 10)  # 240 bytes + "_1_00000.h5"
    with pytest.raises(ParamError, match="byte name"):
        check_saving(proc(tmp_path, filename_prefix="é" * 123), 2, 10)  # 246 bytes: 257 with the rest


def test_a_path_longer_than_the_filesystem_allows(tmp_path: Path) -> None:
    deep = "/" + "/".join(["d" * 200] * 21)  # does not exist: Linux limits assumed
    with pytest.raises(ParamError, match=r"\$\.saving\.base_path: the path of .* more than the 4096"):
        check_saving(proc(tmp_path, base_path=deep), 1, 10)


@pytest.mark.parametrize("base", ["s2/ok", "", "./data"])
def test_base_path_must_be_absolute(tmp_path: Path, base: str) -> None:
    with pytest.raises(ParamError, match=r"\$\.saving\.base_path: .* must be an absolute path"):
        check_saving(proc(tmp_path, base_path=base), 2, 10)


def test_append_is_refused_with_its_reason(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match=r"\$\.saving\.file_exists_policy: 'append' is not supported: Lima2"):
        check_saving(proc(tmp_path, file_exists_policy="append"), 2, 10)


def test_a_disabled_channel_is_not_checked(tmp_path: Path) -> None:
    p = proc(tmp_path, filename_format="same.h5", base_path="rel", file_exists_policy="append")
    p["saving"]["enabled"] = False
    check_saving(p, 2, 10)


def test_file_indices_sample_large_runs() -> None:
    assert file_indices(5, 0) == [0, 1, 2, 3, 4]
    many = file_indices(files_per_receiver(0, 1), 0)
    assert many[:256] == list(range(256)) and {999, 1000, 99999, 100000}.issubset(many) and len(many) < 400
    assert files_per_receiver(51, 10) == 6 and files_per_receiver(101, 10) == 11
