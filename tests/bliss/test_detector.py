"""The detector side of the Bliss object: det.detector (the plugin's settings, in every
Prepare), det_info / det_status / det_capabilities, det.masterfile_metadata (seen in the
master file), and the ROI editor where Flint is not installed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from lima2_conductor.cli.launcher import wait_for


@pytest.fixture
def det(bliss_env: Any) -> Iterator[Any]:
    det = bliss_env.det
    wait_for(lambda: det.det_info.get("plugin"), 30, "the conductor's det_info")
    det.acquisition.reset()
    det.processing.saving.reset()
    det.processing.roi_profiles.clear()
    det.processing.roi_stats.clear()
    det.detector.reset()
    det.masterfile_metadata.reset()
    yield det
    det.detector.reset()
    det.masterfile_metadata.reset()


def saved_scan(det: Any, npoints: int = 3) -> tuple[Any, str, str]:
    """A saved loopscan; its master file and frame dataset, once complete."""
    import h5py
    from bliss.common.scans import loopscan

    scan = loopscan(npoints, 0.01, det, save=True)
    path, dataset = det.client.read_json("master_files")["frame"]
    wait_for(lambda: h5py.File(path, "r")[dataset].shape[0] == npoints, 30, "master file")
    return scan, path, dataset


def test_the_plugin_is_chosen_by_det_info(det: Any) -> None:
    from lima2_conductor.bliss.detectors.simulator import Detector

    assert det.det_info["plugin"] == "Simulator"
    assert isinstance(det.detector, Detector)
    assert {"temperature", "humidity"} <= set(det.det_status)
    assert "software" in det.det_capabilities["trigger_modes"]
    assert set(dir(det.detector)) == {"generator", "dispatch", "nb_prefetch_frames"}
    # defaults: the conductor's control schema
    assert det.detector.generator.type == "gauss"
    assert det.detector.generator.pixel_type == "gray16"
    assert det.detector.dispatch == "round_robin"
    assert det.detector.generator.diffraction["source_pos_x"] == 5.0  # an object's defaults


def test_settings_are_checked_by_the_conductors_schema(det: Any) -> None:
    with pytest.raises(ValueError, match=r"det.detector.generator.type: 'spiral' is not one of"):
        det.detector.generator.type = "spiral"
    with pytest.raises(ValueError, match=r"det.detector.generator.peaks\[0\]"):
        det.detector.generator.peaks = [{"x0": 1.0, "y0": 1.0, "fwhm": -1.0, "max": 1.0}]
    with pytest.raises(AttributeError, match="no setting 'generator.colour'"):
        det.detector.generator.colour = "red"
    assert det.detector.generator.type == "gauss"


def test_settings_persist_in_beacon(det: Any) -> None:
    from lima2_conductor.bliss.detectors import load_plugin

    det.detector.generator.pixel_type = "gray8"
    again = load_plugin("Simulator", "lima2_conductor:det:detector:simulator", det.control_schema)
    assert again.generator.pixel_type == "gray8"
    assert again.control_params()["det"]["generator"]["pixel_type"] == "gray8"


def test_settings_make_the_frames(det: Any) -> None:
    """The plugin's settings go in Prepare's control params: the frames are 8-bit and
    peak where det.detector.generator.peaks says."""
    import h5py

    det.detector.generator.pixel_type = "gray8"
    det.detector.generator.peaks = [{"x0": 200.0, "y0": 40.0, "fwhm": 8.0, "max": 250.0}]
    scan, path, dataset = saved_scan(det)
    sent = det.client.last_params["control"]
    assert sent["det"]["generator"]["pixel_type"] == "gray8"
    assert sent["acq"]["nb_frames"] == 3  # the scan's own control values are kept
    with h5py.File(path, "r") as f:
        frames = np.asarray(f[dataset])
        written = f[dataset.rsplit("/", 1)[0] + "/params/acquisition/det/generator/pixel_type"][()]
    assert frames.dtype == np.uint8 and written == b"gray8"
    y, x = np.unravel_index(np.argmax(frames[1][1:]), frames[1][1:].shape)
    assert (int(y) + 1, int(x)) == (40, 200)
    np.testing.assert_array_equal(scan.streams["det:frame"][1], frames[1])
    meta = next(d["metadata"] for k, d in scan.scan_info["devices"].items() if k.endswith(":det"))
    assert meta["acq_params"]["control"]["det"]["generator"]["pixel_type"] == "gray8"  # the scan's metadata


def test_masterfile_metadata_in_the_master_file(det: Any) -> None:
    import h5py

    meta = det.masterfile_metadata
    meta.extended_det_info = True
    meta.user_defined_det_info = {"beamline": "id00", "calibration": {"distance_m": 0.25}, "model": "SIM-2"}
    det.detector.generator.type = "diffraction"
    _, path, dataset = saved_scan(det)
    group = dataset.rsplit("/", 1)[0]
    with h5py.File(path, "r") as f:
        info = f[f"{group}/detector_information"]
        assert info["beamline"][()] == b"id00"
        assert info["calibration/distance_m"][()] == 0.25
        assert info["model"][()] == b"SIM-2"  # the user's value over det_info's
        assert info["sn"][()] == b"SIM-0001"  # det_info
        assert info["generator/type"][()] == b"diffraction"  # the plugin's extended info

    meta.extended_det_info = False
    meta.user_defined_det_info = {}
    _, path, dataset = saved_scan(det)
    with h5py.File(path, "r") as f:
        info = f[f"{dataset.rsplit('/', 1)[0]}/detector_information"]
        assert "beamline" not in info and "generator" not in info
        assert info["model"][()] == det.det_info["model"].encode()
    assert "masterfile_metadata" not in det.client.last_params


def test_masterfile_metadata_refuses_what_a_master_file_cannot_hold(det: Any) -> None:
    meta = det.masterfile_metadata
    with pytest.raises(TypeError):
        meta.extended_det_info = 1
    with pytest.raises(TypeError):
        meta.user_defined_det_info = ["a"]
    with pytest.raises(ValueError, match="cannot name an HDF5 entry"):
        meta.user_defined_det_info = {"a/b": 1}
    with pytest.raises(ValueError, match="JSON"):
        meta.user_defined_det_info = {"a": object()}
    assert meta.as_dict() == {"extended_det_info": False, "user_defined_det_info": {}}


def test_the_roi_editor_says_why_it_cannot_open(det: Any) -> None:
    from bliss.common.capabilities import EditRoisCapability, get_capability

    from lima2_conductor.bliss.roi_editor import FlintUnavailable

    with pytest.raises(FlintUnavailable, match="ESRF Flint is not installed.*not on PyPI") as err:
        det.processing.edit_rois()
    assert "det.processing.roi_stats.rois = [Roi(" in str(err.value)
    capability = get_capability(det, EditRoisCapability)
    assert capability is not None
    with pytest.raises(FlintUnavailable, match="cannot open the ROI editor"):
        capability.edit_rois()


def test_info_shows_the_detector_and_the_metadata(det: Any) -> None:
    det.detector.generator.pixel_type = "gray8"
    info = det.__info__()
    for text in (
        "Detector status: ",
        "temperature 24.5",
        "Simulator detector (det.detector)",
        "generator.pixel_type",
        "'gray8'",
    ):
        assert text in info, text
    assert "extended_det_info" in info and "user_defined_det_info" in info


def docs_dectris_plugin() -> str:
    """The Dectris plugin module shown in docs/bliss.rst."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "bliss.rst").read_text()
    block = text.split("   from . import DetectorPlugin\n", 1)[1].split("\n\n``", 1)[0]
    return "from . import DetectorPlugin\n" + "\n".join(line[3:] for line in block.splitlines())


def test_a_detector_without_a_module_has_no_settings(bliss_env: Any) -> None:
    from lima2_conductor.bliss.detectors import DetectorPlugin, load_plugin

    plugin = load_plugin("Dectris", "lima2_conductor:test:detector:dectris", dict)
    assert type(plugin) is DetectorPlugin and plugin.control_params() == {}
    assert plugin.__info__() == "Dectris detector (det.detector):\n    no detector setting"


def test_the_docs_dectris_plugin_is_a_table(bliss_env: Any) -> None:
    """The docs' Dectris module, against a schema of the Dectris control's fields."""
    number = {"type": "number", "default": 8041.0}
    schema = {
        "properties": {
            "det": {
                "properties": {
                    "thresholds": {"type": "array", "default": [{"energy": 4020.5, "enabled": True}]},
                    "difference": {"properties": {"enabled": {"type": "boolean", "default": False}}},
                    "roi": {"type": "string", "enum": ["full", "4M"], "default": "full"},
                    "pixel_mask_applied": {"type": "boolean", "default": True},
                    "flatfield_correction_applied": {"type": "boolean", "default": True},
                    "nb_pipeline_threads": {"type": "integer", "minimum": 1, "default": 1},
                }
            },
            "exp": {"properties": {"photon_energy": number}},
        }
    }
    namespace: dict[str, Any] = {"__name__": "lima2_conductor.bliss.detectors.dectris"}
    namespace["__package__"] = "lima2_conductor.bliss.detectors"
    exec(compile(docs_dectris_plugin(), "dectris.py", "exec"), namespace)
    plugin = namespace["Detector"]("lima2_conductor:test:detector:dectris", "Dectris", lambda: schema)
    plugin.reset()
    plugin.experiment.photon_energy = 9000.0
    with pytest.raises(ValueError, match="acquisition.roi"):
        plugin.acquisition.roi = "2M"
    sent = plugin.control_params()
    assert sent["exp"] == {"photon_energy": 9000.0}
    assert sent["det"]["difference"] == {"enabled": False} and sent["det"]["roi"] == "full"
    plugin.reset()
