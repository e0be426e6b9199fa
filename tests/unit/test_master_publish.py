"""The master file's final rename: under ``abort`` it never replaces a file that appeared
at its path during the run, only the run's own earlier master file (a checkpoint)."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from lima2_conductor.core import master_publish
from lima2_conductor.core.errors import SavingError


def master(path: Path, uuid: str, tag: str = "") -> str:
    with h5py.File(path, "w") as f:
        f["entry_0000/conductor/uuid"] = uuid
        f.attrs["tag"] = tag
    return str(path)


def tag(path: Path) -> str:
    with h5py.File(path, "r") as f:
        return str(f.attrs["tag"])


@pytest.fixture(params=["renameat2", "link"])
def system_calls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways: the kernel's RENAME_NOREPLACE/EXCHANGE, and hard links where there is none."""
    if request.param == "link":
        monkeypatch.setattr(master_publish, "_RENAMEAT2", None)
    elif master_publish._RENAMEAT2 is None:
        pytest.skip("no renameat2 in this C library")
    return str(request.param)


def test_a_new_master_file_and_its_checkpoints(tmp_path: Path, system_calls: str) -> None:
    path = tmp_path / "scan_master.h5"
    master_publish.publish(master(tmp_path / "t1", "run-1", "first"), str(path), "run-1", overwrite=False)
    assert tag(path) == "first"
    master_publish.publish(master(tmp_path / "t2", "run-1", "second"), str(path), "run-1", overwrite=False)
    assert tag(path) == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan_master.h5"]


@pytest.mark.parametrize("theirs", [b"not even HDF5", None])
def test_a_file_that_appeared_is_never_written_over(tmp_path: Path, system_calls: str, theirs: bytes | None) -> None:
    path = tmp_path / "scan_master.h5"
    if theirs is None:
        master(path, "another-run", "theirs")  # a master file of another run
    else:
        path.write_bytes(theirs)
    before = path.read_bytes()
    tmp = master(tmp_path / "t1", "run-1", "ours")
    with pytest.raises(SavingError, match=f"{path} appeared during the run"):
        master_publish.publish(tmp, str(path), "run-1", overwrite=False)
    assert path.read_bytes() == before
    assert tag(Path(tmp)) == "ours"  # left for the caller to remove
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan_master.h5", "t1"]


def test_overwrite_replaces_any_file(tmp_path: Path) -> None:
    path = tmp_path / "scan_master.h5"
    path.write_bytes(b"old")
    master_publish.publish(master(tmp_path / "t1", "run-1", "ours"), str(path), "run-1", overwrite=True)
    assert tag(path) == "ours"


def test_the_temporary_name_is_short_whatever_the_master_file_name(tmp_path: Path) -> None:
    tmp = master_publish.temp_beside(str(tmp_path / ("p" * 245 + "_master.h5")))
    assert Path(tmp).parent == tmp_path and len(Path(tmp).name) < 40
