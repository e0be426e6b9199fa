"""The Lima2 vocabulary, in one place: device states, pixel and trigger names, row dtypes,
file naming, error payloads, and the registry of processing pipelines.

Everything else (core, backend, simulators) reads these names from here, so that a new
pipeline or a renamed field is declared once.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np


class DeviceState(IntEnum):
    """``acq_state`` of a Lima2 control or receiver device (values fixed by Lima2).

    ``OFFLINE`` never comes from a device: it stands for one that does not answer.
    """

    IDLE = 0
    PREPARED = 1
    RUNNING = 2
    STOPPED = 3
    FAULT = 4
    TERMINATE = 5
    OFFLINE = 6


# -- detector ------------------------------------------------------------------------
PIXEL_DTYPES: dict[str, np.dtype] = {
    "gray8": np.dtype("u1"),
    "gray8s": np.dtype("i1"),
    "gray16": np.dtype("<u2"),
    "gray16s": np.dtype("<i2"),
    "gray32": np.dtype("<u4"),
    "gray32s": np.dtype("<i4"),
    "gray32f": np.dtype("<f4"),
    "gray64f": np.dtype("<f8"),
}
PIXEL_TYPES: tuple[str, ...] = tuple(PIXEL_DTYPES)
TRIGGER_MODES: tuple[str, ...] = ("internal", "software", "external", "gate")
INTERNAL_TRIGGER, SOFTWARE_TRIGGER, EXTERNAL_TRIGGER, GATE_TRIGGER = TRIGGER_MODES
DISPATCH_MODES: tuple[str, ...] = ("round_robin", "predictive_random")
ROUND_ROBIN_DISPATCH, RANDOM_DISPATCH = DISPATCH_MODES
DEFAULT_PIXEL_TYPE = "gray16"
FLOAT_PIXEL_TYPE = "gray32f"
"""Pixel type of corrected frames and vectors (SMX, FAI)."""
SECONDS_TO_US = 1_000_000
"""Times inside Lima2 params dicts are in microseconds."""
ACQ_LIMITS: dict[str, tuple[int, int]] = {
    "nb_frames": (0, 2**31 - 1),
    "expo_time": (1, 3_600 * SECONDS_TO_US),
    "latency_time": (0, 3_600 * SECONDS_TO_US),
}
"""Inclusive range of the ``acq`` params that the conductor's typed settings fill (times in
microseconds): the Lima2 frame count is a 32-bit int (0 = endless), an exposure lasts at
least 1 us, and no time exceeds an hour. The simulators' schema and capabilities declare
these, and the conductor's settings are limited to them, so a stored setting is one that
the next Prepare accepts."""


def pixel_dtype(pixel_type: str) -> np.dtype:
    try:
        return PIXEL_DTYPES[pixel_type]
    except KeyError:
        raise ValueError(f"unknown pixel type {pixel_type!r} (known: {', '.join(PIXEL_TYPES)})") from None


# -- reduced-data rows -------------------------------------------------------------------
STATS_DTYPE = np.dtype(
    [
        ("frame_idx", "<i4"),
        ("recv_idx", "<i4"),
        ("min", "<f4"),
        ("max", "<f4"),
        ("avg", "<f4"),
        ("std", "<f4"),
        ("sum", "<f8"),
    ]
)
"""Rows of ``popRoiStatistics`` (one per ROI per frame) and ``popRoiProfiles`` (one per
profile point per frame)."""
FRAME_IDX_DTYPE = np.dtype([("recv_idx", "<i4"), ("frame_idx", "<i4")])
"""Rows of ``popFrameIdx`` (dynamic dispatch): one per frame, in local order."""
FRAME_IDX_GETTER = "popFrameIdx"
PEAK_COUNTER_DTYPE = np.dtype([("frame_idx", "<i4"), ("recv_idx", "<i4"), ("nb_peaks", "<i4")])
"""Rows of ``popPeakCounters`` (SMX): one per frame, the number of peak pixels found."""
FILL_FACTOR_DTYPE = np.dtype([("frame_idx", "<i4"), ("recv_idx", "<i4"), ("fill_factor", "<i4")])
"""Rows of ``popFillFactors`` (XPCS): one per frame, the number of lit pixels."""
ROI_STATS_GETTER = "popRoiStatistics"
ROI_PROFILES_GETTER = "popRoiProfiles"
PEAK_COUNTERS_GETTER = "popPeakCounters"
FILL_FACTORS_GETTER = "popFillFactors"


# -- DevEncoded tags and frame kinds --------------------------------------------------------
DATA_ARRAY = "DATA_ARRAY"
STRUCTURED_ARRAY = "STRUCTURED_ARRAY"
SPARSE_FRAME = "SPARSE_FRAME"
SMX_SPARSE_FRAME = "SMX_SPARSE_FRAME"
DENSE, SPARSE, SMX_SPARSE, VECTOR = "dense", "sparse", "smx_sparse", "vector"
"""Frame kinds: an image, a sparse image (index + intensity), an SMX peak list with its
background profile, a 1-D vector (spectrum)."""
ENCODING_OF_KIND = {DENSE: DATA_ARRAY, SPARSE: SPARSE_FRAME, SMX_SPARSE: SMX_SPARSE_FRAME, VECTOR: DATA_ARRAY}
DENSE_SUFFIX = ":dense"
"""``GetFrame`` source suffix asking for a sparse source rebuilt as a dense image."""

# -- frame-info attributes ----------------------------------------------------------------------
INPUT_FRAME_INFO = "input_frame_info"
PROCESSED_FRAME_INFO = "processed_frame_info"
VECTOR_INFO = "vector_info"


def frame_info_of(kind: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """A frame-info JSON object in the image layout (``nb_channels``, ``dimensions``,
    ``pixel_type``); a ``vector_info`` ``{length, pixel_type}`` becomes 1 x 1 x length."""
    if kind == VECTOR and "length" in info:
        return {"nb_channels": 1, "dimensions": {"x": int(info["length"]), "y": 1}, "pixel_type": info["pixel_type"]}
    return dict(info)


# -- file naming -----------------------------------------------------------------------
DEFAULT_FILENAME_FORMAT = "{filename_prefix}_{filename_rank}_{file_number:05d}{filename_suffix}"
DEFAULT_FILENAME_SUFFIX = ".h5"
MASTER_FILE_SUFFIX = "_master.h5"
FILE_EXISTS_POLICIES: tuple[str, ...] = ("abort", "overwrite", "append")
NB_DIMENSIONS: tuple[str, ...] = ("dim_3d_or_4d", "dim_4d")


def data_file_name(saving: Mapping[str, Any], rank: int, file_idx: int) -> str:
    """Name of file ``file_idx`` of receiver ``rank`` (relative to ``base_path``)."""
    return str(saving.get("filename_format") or DEFAULT_FILENAME_FORMAT).format(
        filename_prefix=saving["filename_prefix"],
        filename_rank=rank,
        file_number=int(saving.get("start_number", 0)) + file_idx,
        filename_suffix=saving.get("filename_suffix", DEFAULT_FILENAME_SUFFIX),
    )


def master_file_name(saving: Mapping[str, Any]) -> str:
    return f"{saving['filename_prefix']}{MASTER_FILE_SUFFIX}"


def frames_dataset(saving: Mapping[str, Any]) -> str:
    """Path of the frames dataset inside a data file (and of the master file's VDS)."""
    return f"{saving['nx_entry_name']}/{saving['nx_instrument_name']}/{saving['nx_detector_name']}/data"


# -- versions ---------------------------------------------------------------------------
CORE_VERSION = "core-1.2.0"
"""What the Lima2 core's control ``version`` and processing ``Version`` read like
(``<prefix>-<major>.<minor>.<patch>``; Bliss accepts ``core-1.2``)."""


# -- processing devices -------------------------------------------------------------------
def processing_device_name(domain: str, uuid: str, rank: int) -> str:
    """``<domain>/limaprocessing/<uuid>@<rank>``: the device a receiver creates for a run."""
    return f"{domain}/limaprocessing/{uuid}@{rank}"


def processing_device_pattern(uuid: str) -> str:
    """Database pattern matching the processing devices of run ``uuid``."""
    return f"*/limaprocessing/{uuid}*"


def processing_rank(name: str) -> int:
    return int(name.split("@")[-1])


# -- errors ----------------------------------------------------------------------------
LIMA_ERROR_REASON = "LIMA_Exception"


def lima_what(payload: str) -> str:
    """The message of a Lima2 error payload: the ``what`` of its JSON, or the text."""
    try:
        value = json.loads(payload)
    except ValueError:
        return payload.strip()
    if isinstance(value, dict) and "what" in value:
        return str(value["what"])
    return payload.strip()


def lima_error(what: str, **info: Any) -> str:
    """A Lima2 error payload ``{"what", "errinfo"}``."""
    return json.dumps({"what": what, "errinfo": {k: str(v) for k, v in info.items()}})


# -- the pipeline registry ----------------------------------------------------------------
@dataclass(frozen=True)
class FrameSource:
    """A source of frames of a processing device."""

    name: str  # what clients ask for (GetFrame's source)
    getter: str  # the processing device command, global index in, DevEncoded out
    info_attr: str  # attribute with the geometry (JSON)
    last_key: str  # key of ``last_frames`` with the newest global index
    saving: str | None = None  # proc_params key of the saving channel, if it can be saved
    kind: str = DENSE
    label: str | None = None  # ``nb_frames_<label>`` counts this source's frames

    @property
    def encoding(self) -> str:
        return ENCODING_OF_KIND[self.kind]

    @property
    def counter(self) -> str | None:
        return f"nb_frames_{self.label}" if self.label else None


@dataclass(frozen=True)
class ReducedSource:
    """A pop command of the processing devices and how its rows split into channels."""

    name: str
    getter: str
    lengths: tuple[int, ...]  # elements per channel (1 for a ROI, the length for a profile)
    dtype: np.dtype = STATS_DTYPE
    profile: bool = False

    @property
    def elements(self) -> int:
        return sum(self.lengths)

    def describe(self) -> dict[str, Any]:
        return {
            "channels": len(self.lengths),
            "getter": self.getter,
            "dtype": [[n, self.dtype[n].str] for n in self.dtype.names or ()],
            "shapes": [[n] if self.profile else [] for n in self.lengths],
        }


def roi_sources(proc_params: Mapping[str, Any]) -> list[ReducedSource]:
    """ROI statistics and profiles, as any pipeline whose params enable them produces."""
    out = []
    stats = proc_params.get("statistics", {})
    if stats.get("enabled"):
        n = len(stats.get("rect_rois", [])) + len(stats.get("arc_rois", []))
        if n:
            out.append(ReducedSource("roi_stats", ROI_STATS_GETTER, (1,) * n))
    prof = proc_params.get("profiles", {})
    if prof.get("enabled") and prof.get("rois"):
        lengths = [
            int(roi["dimensions"]["x"] if direction == "horizontal" else roi["dimensions"]["y"])
            for roi, direction in zip(prof["rois"], prof.get("directions", []), strict=False)
        ]
        if lengths:
            out.append(ReducedSource("roi_profile", ROI_PROFILES_GETTER, tuple(lengths), profile=True))
    return out


def _finalise_common(proc: dict[str, Any], rank: int, nb_receivers: int, dynamic: bool) -> dict[str, Any]:
    """Per-receiver copy of the processing params: file rank on every saving channel,
    frame-index channel under dynamic dispatch."""
    out = copy.deepcopy(proc)
    for value in out.values():
        if isinstance(value, dict) and "filename_rank" in value:
            value["filename_rank"] = rank
    if dynamic:
        out["frame_idx_enabled"] = True
        for value in out.values():
            if isinstance(value, dict) and "include_frame_idx" in value:
                value["include_frame_idx"] = True
    return out


@dataclass(frozen=True)
class PipelineSpec:
    """What the conductor needs to know about one processing class."""

    class_name: str
    frame_sources: tuple[FrameSource, ...]
    progress_counter: str  # the counter that says how far the pipeline is
    saved_counter: str = "nb_frames_saved"
    reduced: Callable[[Mapping[str, Any]], list[ReducedSource]] = roi_sources
    finalise: Callable[[dict[str, Any], int, int, bool], dict[str, Any]] = _finalise_common
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def counters(self) -> tuple[str, ...]:
        """Progress counters every processing device of this class exposes."""
        labelled = [s.counter for s in self.frame_sources if s.counter]
        return tuple(dict.fromkeys(["nb_frames_source", *labelled, self.progress_counter, self.saved_counter]))

    @property
    def last_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.last_key for s in self.frame_sources))

    @property
    def saving_channels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.saving for s in self.frame_sources if s.saving))

    def source(self, name: str) -> FrameSource:
        for s in self.frame_sources:
            if s.name == name:
                return s
        have = ", ".join(s.name for s in self.frame_sources)
        raise KeyError(f"no frame source {name!r} in {self.class_name} (have: {have})")

    def saved_sources(self, proc_params: Mapping[str, Any]) -> list[FrameSource]:
        """Frame sources whose saving channel is enabled in ``proc_params``."""
        return [s for s in self.frame_sources if s.saving and proc_params.get(s.saving, {}).get("enabled")]

    def saving_overrides(self, saving: Mapping[str, Any]) -> dict[str, Any]:
        """Spread one saving dict (the conductor's settings) over every saving channel; a
        channel other than the first gets its source name appended to the prefix, so
        that no two channels share files or a master file."""
        out: dict[str, Any] = {}
        for k, source in enumerate(s for s in self.frame_sources if s.saving):
            channel = dict(saving)
            if k and "filename_prefix" in channel:
                channel["filename_prefix"] = f"{channel['filename_prefix']}_{source.name}"
            out[source.saving or ""] = channel
        return out


class PipelineRefused(ValueError):
    """Processing params that a pipeline cannot run with (refused before any device call)."""


def _finalise_smx(proc: dict[str, Any], rank: int, nb_receivers: int, dynamic: bool) -> dict[str, Any]:
    """As every pipeline, plus the accumulation counts shared among the receivers: each
    must be a multiple of the number of receivers, and each receiver gets its share."""
    out = _finalise_common(proc, rank, nb_receivers, dynamic)
    fai = out.get("fai", {})
    for key in ("acc_nb_frames_reset", "acc_nb_frames_xfer"):
        value = int(fai.get(key, 0))
        if value % nb_receivers:
            raise PipelineRefused(f"fai.{key} ({value}) must be a multiple of the number of receivers ({nb_receivers})")
        fai[key] = value // nb_receivers
    return out


def _finalise_failing(proc: dict[str, Any], rank: int, nb_receivers: int, dynamic: bool) -> dict[str, Any]:
    if dynamic:
        raise PipelineRefused("the Failing pipeline does not support dynamic dispatch (no frame_idx stream)")
    return copy.deepcopy(proc)


def _smx_reduced(proc_params: Mapping[str, Any]) -> list[ReducedSource]:
    return [ReducedSource("nb_peaks", PEAK_COUNTERS_GETTER, (1,), PEAK_COUNTER_DTYPE), *roi_sources(proc_params)]


def _xpcs_reduced(proc_params: Mapping[str, Any]) -> list[ReducedSource]:
    return [ReducedSource("fill_factor", FILL_FACTORS_GETTER, (1,), FILL_FACTOR_DTYPE), *roi_sources(proc_params)]


def _no_reduced(proc_params: Mapping[str, Any]) -> list[ReducedSource]:
    return []


LEGACY = PipelineSpec(
    class_name="LimaProcessingLegacy",
    frame_sources=(
        FrameSource("frame", "getFrame", PROCESSED_FRAME_INFO, "processed_idx", saving="saving", label="processed"),
        FrameSource("input_frame", "getInputFrame", INPUT_FRAME_INFO, "input_idx", label="input"),
    ),
    progress_counter="nb_frames_processed",
)
FAILING = PipelineSpec(
    class_name="LimaProcessingFailing",
    frame_sources=(),
    progress_counter="nb_frames_source",
    reduced=_no_reduced,
    finalise=_finalise_failing,
)
SMX = PipelineSpec(
    class_name="LimaProcessingSmx",
    frame_sources=(
        FrameSource("frame", "getFrame", PROCESSED_FRAME_INFO, "input_idx", saving="saving_dense", label="input"),
        FrameSource(
            "sparse_frame",
            "getSparseFrame",
            PROCESSED_FRAME_INFO,
            "sparse_idx",
            saving="saving_sparse",
            kind=SMX_SPARSE,
            label="sparse",
        ),
        FrameSource(
            "acc_corrected", "getAccCorrected", PROCESSED_FRAME_INFO, "sparse_idx", "saving_accumulation_corrected"
        ),
        FrameSource("acc_peaks", "getAccPeaks", PROCESSED_FRAME_INFO, "sparse_idx", "saving_accumulation_peak"),
    ),
    progress_counter="nb_frames_sparse",
    reduced=_smx_reduced,
    finalise=_finalise_smx,
)
XPCS = PipelineSpec(
    class_name="LimaProcessingXpcs",
    frame_sources=(
        FrameSource("input_frame", "getInputFrame", INPUT_FRAME_INFO, "input_idx", label="input"),
        FrameSource("frame", "getFrame", PROCESSED_FRAME_INFO, "processed_idx", "saving_dense", label="processed"),
        FrameSource(
            "sparse_frame",
            "getSparseFrame",
            PROCESSED_FRAME_INFO,
            "sparse_idx",
            saving="saving_sparse",
            kind=SPARSE,
            label="sparse",
        ),
        FrameSource(
            "accumulated_frame", "getAccumulatedFrame", PROCESSED_FRAME_INFO, "accumulated_idx", label="accumulated"
        ),
    ),
    progress_counter="nb_frames_processed",
    reduced=_xpcs_reduced,
)
FAI = PipelineSpec(
    class_name="LimaProcessingFai",
    frame_sources=(
        FrameSource("frame", "getFrame", PROCESSED_FRAME_INFO, "source_idx", saving="saving_dense", label="source"),
        FrameSource(
            "fai_averint",
            "getFaiAverint",
            VECTOR_INFO,
            "integrated_idx",
            saving="saving_fai",
            kind=VECTOR,
            label="integrated",
        ),
    ),
    progress_counter="nb_frames_integrated",
)

PIPELINES: dict[str, PipelineSpec] = {spec.class_name: spec for spec in (LEGACY, FAILING, SMX, XPCS, FAI)}
DEFAULT_PIPELINE = LEGACY.class_name


def pipeline(class_name: str) -> PipelineSpec:
    """The spec of a processing class; ``KeyError`` naming the known ones."""
    try:
        return PIPELINES[class_name]
    except KeyError:
        raise KeyError(f"unknown processing class {class_name!r} (known: {', '.join(PIPELINES)})") from None
