"""The conductor's read-only attributes: one line (or a few) each, read from the view."""

from __future__ import annotations

import json
from typing import Any

import tango

from ..core.state import RunState, SystemState
from ..core.view import ConductorView
from .attributes import ViewAttr


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _det(v: ConductorView, name: str) -> dict[str, Any]:
    return v.detector.get(name, {})


def _acq_status(v: ConductorView) -> str:
    """Lima1's ``acq_status`` words."""
    if v.tango_state == "FAULT":
        return "Fault"
    if v.running:
        return "Running"
    if v.run_state in (RunState.PREPARING, RunState.STARTING, RunState.RESETTING, RunState.CLOSING):
        return "Configuration"
    return "Ready"


FRAMES = "frames"
STATE_ATTRS = frozenset({"acq_state", "run_state", "acq_status", "running", "failed"})
"""Published after the other attributes of a snapshot (see ``Monitor.publish``)."""
VIEW_ATTRS: list[ViewAttr] = [
    # -- state
    ViewAttr(
        "acq_state",
        tango.DevEnum,
        lambda v: int(v.system_state),
        "System state",
        "System state derived from the devices' acq_state",
        enum_labels=[s.name for s in SystemState],
    ),
    ViewAttr(
        "run_state",
        str,
        lambda v: v.run_state.value,
        "Run state",
        "The conductor's run state: IDLE, PREPARING, PREPARED, STARTING, RUNNING, WAITING_FOR_PROC, "
        "STOPPING, CLOSING, DONE, STOPPED, FAULT, RESETTING",
    ),
    ViewAttr(
        "acq_status",
        str,
        _acq_status,
        "Acquisition status",
        "Lima1-style status: Ready, Configuration, Running or Fault",
    ),
    ViewAttr("running", bool, lambda v: v.running, "Running", "True while an acquisition runs"),
    ViewAttr("failed", bool, lambda v: v.failed, "Failed", "True when the current run failed"),
    ViewAttr("acq_uuid", str, lambda v: v.uuid, "Acquisition UUID", "UUID of the current acquisition, empty if none"),
    ViewAttr("last_error", str, lambda v: v.last_error, "Last error", "Last error, empty if none"),
    ViewAttr(
        "errors", (str,), lambda v: list(v.errors), "Errors", "Errors of the current run, oldest first", max_dim_x=64
    ),
    ViewAttr(
        "device_states",
        str,
        lambda v: _json(v.device_states),
        "Device states",
        "JSON: device name -> acq_state name (OFFLINE if unreachable)",
        expert=True,
    ),
    # -- progress
    ViewAttr(
        "nb_frames",
        int,
        lambda v: v.progress.nb_frames,
        "Frames requested",
        "Frames requested by the current run (0 = endless)",
        FRAMES,
        "%d",
    ),
    ViewAttr(
        "nb_frames_acquired",
        int,
        lambda v: v.progress.nb_frames_acquired,
        "Frames acquired",
        "Frames acquired by the detector (control device)",
        FRAMES,
        "%d",
    ),
    ViewAttr(
        "nb_frames_xferred",
        int,
        lambda v: v.progress.nb_frames_xferred,
        "Frames transferred",
        "Frames transferred, summed over receivers",
        FRAMES,
        "%d",
    ),
    ViewAttr(
        "nb_frames_processed",
        int,
        lambda v: v.progress.nb_frames_processed,
        "Frames processed",
        "Frames processed, summed over receivers (the pipeline's progress indicator)",
        FRAMES,
        "%d",
    ),
    ViewAttr(
        "nb_frames_saved",
        int,
        lambda v: v.progress.nb_frames_saved,
        "Frames saved",
        "Frames saved, summed over receivers",
        FRAMES,
        "%d",
    ),
    ViewAttr(
        "nb_frames_ready",
        int,
        lambda v: v.progress.nb_frames_ready,
        "Frames ready",
        "Length of the contiguous prefix of processed frames, in global order",
        FRAMES,
        "%d",
    ),
    ViewAttr(
        "last_image_saved",
        int,
        lambda v: v.frames_saved_ready - 1,
        "Last image saved",
        "Lima1 name: global index of the last frame of the contiguous saved prefix, -1 if none",
        "",
        "%d",
    ),
    ViewAttr(
        "progress_counters",
        str,
        lambda v: _json(v.progress.counters),
        "Progress counters",
        "JSON: every counter with sum, min, max and per-receiver values",
        expert=True,
    ),
    ViewAttr(
        "frame_rate",
        float,
        lambda v: round(v.progress.frame_rate, 3),
        "Frame rate",
        "Measured transfer rate",
        "Hz",
        "%.1f",
    ),
    # -- detector
    ViewAttr(
        "det_info",
        str,
        lambda v: _json(_det(v, "det_info")),
        "Detector info",
        "Detector information (JSON, from the control device)",
        expert=True,
    ),
    ViewAttr(
        "det_status",
        str,
        lambda v: _json(_det(v, "det_status")),
        "Detector status",
        "Detector status (JSON, refreshed every second)",
        expert=True,
    ),
    ViewAttr(
        "det_capabilities",
        str,
        lambda v: _json(_det(v, "det_capabilities")),
        "Detector capabilities",
        "Detector capabilities (JSON: trigger modes, time ranges...)",
        expert=True,
    ),
    ViewAttr(
        "det_plugin", str, lambda v: str(_det(v, "det_info").get("plugin", "")), "Detector plugin", "Detector plugin"
    ),
    ViewAttr("det_model", str, lambda v: str(_det(v, "det_info").get("model", "")), "Detector model", "Detector model"),
    ViewAttr(
        "det_width",
        int,
        lambda v: int(_det(v, "det_info").get("dimensions", {}).get("x", 0)),
        "Width",
        "Sensor width",
        "px",
        "%d",
    ),
    ViewAttr(
        "det_height",
        int,
        lambda v: int(_det(v, "det_info").get("dimensions", {}).get("y", 0)),
        "Height",
        "Sensor height",
        "px",
        "%d",
    ),
    ViewAttr(
        "det_pixel_type",
        str,
        lambda v: v.pixel_type,
        "Pixel type",
        "Pixel type of the current run's frames (the detector's when no run is prepared)",
    ),
    ViewAttr(
        "det_pixel_size",
        (float,),
        lambda v: [float(_det(v, "det_info").get("pixel_size", {}).get(k, 0.0)) for k in ("x", "y")],
        "Pixel size",
        "Pixel size (x, y)",
        "m",
        "%.3e",
        max_dim_x=2,
    ),
    ViewAttr(
        "receivers", (str,), lambda v: list(v.receivers), "Receivers", "Receiver devices, in rank order", max_dim_x=256
    ),
    ViewAttr("topology_name", str, lambda v: v.topology, "Topology", "Frame dispatch topology"),
    # -- pipeline
    ViewAttr(
        "processing_class",
        str,
        lambda v: v.processing_class,
        "Processing class",
        "Processing class of the current pipeline",
    ),
    ViewAttr(
        "frame_channels",
        str,
        lambda v: _json(v.frame_channels),
        "Frame sources",
        "JSON: frame sources with their getter, shape (channels, height, width), pixel type, saved",
        expert=True,
    ),
    ViewAttr(
        "reduced_data_channels",
        str,
        lambda v: _json(v.reduced_data_channels),
        "Reduced data channels",
        "JSON: reduced data channels (count, row dtype, shapes, frames ready)",
        expert=True,
    ),
    ViewAttr(
        "reduced_data_ready",
        int,
        lambda v: v.reduced_data_ready,
        "Reduced data ready",
        "Frames whose reduced data is available in every channel",
        FRAMES,
        "%d",
    ),
    ViewAttr(
        "master_files",
        str,
        lambda v: _json(v.master_files),
        "Master files",
        "JSON: frame source -> [master file, dataset path]",
        expert=True,
    ),
    ViewAttr(
        "pipeline_running",
        bool,
        lambda v: v.running and bool(v.uuid),
        "Pipeline running",
        "True while the processing pipeline of the current run is active",
    ),
]


EVENT_ATTRS = [a.name for a in VIEW_ATTRS]
