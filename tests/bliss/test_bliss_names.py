"""Scripts written for Bliss's own Lima2 controller run unchanged: its flat setting names
on ``det.processing`` (``use_mask``, ``mask = path``, ``nb_frames_buffer``,
``use_roi_stats``...), the saving's compression on every plugin, ``roi_stats.get``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("bliss", reason="Bliss is not installed; install the extras: pip install -e '.[test,bliss-test]'")

from lima2_conductor.bliss.processing import PLUGINS  # noqa: E402 - Bliss first
from lima2_conductor.bliss.processing.flat_names import flat_names  # noqa: E402


@pytest.fixture
def legacy(bliss_env: Any) -> Iterator[Any]:
    det = bliss_env.det
    det.proc_plugin = "legacy"
    yield det.processing
    for plugin in ("xpcs", "legacy"):
        det.proc_plugin = plugin
        p = det.processing
        for group in ("mask", "flatfield", "background", "accumulation", "buffers", "fifo", "roi_use", "saving"):
            if hasattr(p, group):
                getattr(p, group).reset()
        p.roi_stats.clear()
        p.roi_profiles.clear()


def test_flat_names_of_each_plugin() -> None:
    assert set(flat_names(PLUGINS["legacy"].groups)) >= {
        "use_mask",
        "mask",
        "use_flatfield",
        "flatfield",
        "use_background",
        "background",
        "nb_fifo_frames",
        "nb_frames_buffer",
        "nb_input_frames_buffer",
        "nb_roi_statistics_buffer",
        "nb_roi_profiles_buffer",
        "nb_frame_idx_buffer",
    }
    assert set(flat_names(PLUGINS["xpcs"].groups)) >= {
        "nb_threads",
        "use_accumulation",
        "acc_nb_frames",
        "use_filter",
        "max_count",
        "nb_sparse_frames_buffer",
    }
    assert set(flat_names(PLUGINS["smx"].groups)) >= {"nb_peak_counters_buffer", "nb_fifo_frames"}
    assert "fai" not in flat_names(PLUGINS["fai"].groups)  # a group in Bliss too


def test_flat_names_read_and_write_the_groups(legacy: Any) -> None:
    legacy.use_mask = True
    legacy.mask = "/data/mask.edf"
    legacy.nb_frames_buffer = 7
    legacy.nb_fifo_frames = 12
    assert legacy.mask.enabled is True and legacy.mask.path == "/data/mask.edf"
    assert legacy.use_mask is True and legacy.nb_frames_buffer == 7 and legacy.buffers.nb_frames_buffer == 7
    params = legacy.params(lambda source: {"enabled": False})
    assert params["mask"] == {"enabled": True, "path": "/data/mask.edf"}
    assert params["fifo"] == {"nb_fifo_frames": 12}
    assert "use_flatfield" in dir(legacy)


def test_a_setting_no_plugin_has_is_refused(legacy: Any) -> None:
    with pytest.raises(AttributeError, match="no setting 'use_masks'"):
        legacy.use_masks = True
    with pytest.raises(TypeError, match="mask is a group of settings"):
        legacy.mask = True
    with pytest.raises(TypeError):
        legacy.use_mask = "yes"


def test_xpcs_flat_names(bliss_env: Any, legacy: Any) -> None:
    bliss_env.det.proc_plugin = "xpcs"
    xpcs = bliss_env.det.processing
    xpcs.use_accumulation = True
    xpcs.acc_nb_frames = 4
    xpcs.max_count = 3
    xpcs.nb_threads = 2
    params = xpcs.params(lambda source: {"enabled": False})
    assert params["accumulation"] == {"enabled": True, "nb_frames": 4}
    assert params["filter"]["max_count"] == 3 and params["thread"] == {"nb_threads": 2}


def test_use_roi_stats_and_profiles(bliss_env: Any, legacy: Any) -> None:
    det = bliss_env.det
    legacy.roi_stats.set("r1", 0, 0, 10, 10)
    legacy.roi_profiles.set("p1", 0, 0, 10, 10)
    assert legacy.roi_stats.get("r1").width == 10 and legacy.roi_profiles.get("p1").mode == "horizontal"
    assert legacy.use_roi_stats is True and legacy.use_roi_profiles is True
    assert {"r1_sum", "p1_std"} <= {c.name for c in det.counters}
    legacy.use_roi_stats = False
    legacy.use_roi_profiles = False
    assert not {"r1_sum", "p1_std"} & {c.name for c in det.counters}
    params = legacy.params(lambda source: {"enabled": False})
    assert params["statistics"]["enabled"] is False and params["profiles"]["enabled"] is False
    assert [r.name for r in legacy.roi_stats.rois] == ["r1"]  # kept for when they are used again


def test_saving_compression_on_every_saving_plugin(bliss_env: Any, legacy: Any) -> None:
    det = bliss_env.det
    det.proc_plugin = "xpcs"
    det.processing.saving.compression = "bshuf_lz4"
    det.processing.saving.nb_dimensions = "dim_4d"
    params = det.processing.params(lambda source: {"enabled": True, "base_path": "/tmp"})
    assert params["saving_dense"]["compression"] == "bshuf_lz4"
    assert params["saving_dense"]["nb_dimensions"] == "dim_4d"


def test_frame_progress_as_bliss_names_it(bliss_env: Any) -> None:
    det = bliss_env.det
    assert isinstance(det.nb_frames_acquired, int) and det.nb_frames_acquired >= 0
    assert isinstance(det.nb_frames_xferred, int) and det.nb_frames_xferred >= 0
