"""Simulated frames: a deterministic function of the **global** frame index.

``frame(i)`` is built as follows (documented so that any test can recompute it):

1. The generator prefetches ``P = det.nb_prefetch_frames`` patterns. Pattern ``p``
   is the sum of the Gaussian peaks of ``det.generator.gauss.peaks`` (position
   ``x0, y0``, full width at half maximum ``fwhm``, height ``max``) with each
   height scaled by ``(1 + grow_factor * p)``, evaluated on the frame grid
   (after ``img.roi`` cropping and ``img.binning``; a binned pixel holds the
   value at its centre), plus ``1 + (p % 7)`` so that consecutive frames differ even
   with ``grow_factor = 0``. Values are clipped to the pixel type's range and cast.
2. ``frame(i)`` is pattern ``i % P`` with the index ``i`` stamped into the first
   pixels of row 0 of channel 0: ``STAMP_DIGITS`` little-endian base-256 digits
   (one digit per pixel, whatever the pixel type).

So ROI values outside the stamp repeat with period ``P`` in global frame order,
and ``stamped_index(frame)`` recovers ``i`` end to end.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.lima2 import ROUND_ROBIN_DISPATCH, pixel_dtype

STAMP_DIGITS = 5
"""Pixels of row 0 that carry the frame index (base 256: up to 2**40 - 1)."""


@dataclass(frozen=True)
class FrameGeometry:
    """Shape and pixel type of the frames an acquisition produces."""

    width: int
    height: int
    channels: int
    pixel_type: str

    @property
    def dtype(self) -> np.dtype:
        return pixel_dtype(self.pixel_type)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def info(self) -> dict[str, Any]:
        """The Lima2 ``frame_info`` JSON object."""
        return {
            "nb_channels": self.channels,
            "dimensions": {"x": self.width, "y": self.height},
            "pixel_type": self.pixel_type,
        }


def geometry_from_params(acq_params: dict[str, Any], sensor_width: int, sensor_height: int) -> FrameGeometry:
    """Frame geometry after ROI and binning; raises ``ValueError`` naming the field."""
    roi = acq_params["img"]["roi"]
    x, y = roi["topleft"]["x"], roi["topleft"]["y"]
    w, h = roi["dimensions"]["x"], roi["dimensions"]["y"]
    if w == 0 and h == 0:
        w, h = sensor_width - x, sensor_height - y
    if w <= 0 or h <= 0 or x + w > sensor_width or y + h > sensor_height:
        raise ValueError(f"img.roi {x},{y} {w}x{h} is outside the {sensor_width}x{sensor_height} sensor")
    bx, by = acq_params["img"]["binning"]["x"], acq_params["img"]["binning"]["y"]
    if w // bx == 0 or h // by == 0:
        raise ValueError(f"img.binning {bx}x{by} is larger than the {w}x{h} ROI")
    gen = acq_params["det"]["generator"]
    return FrameGeometry(width=w // bx, height=h // by, channels=gen["nb_channels"], pixel_type=gen["pixel_type"])


@functools.lru_cache(maxsize=4)
def _patterns(g: FrameGeometry, layout: str, nb: int) -> npt.NDArray:
    """The prefetched patterns (read-only), kept for the next acquisitions with the same
    geometry and peaks, as a real detector keeps its prefetch buffers, instead of being
    computed again at every Prepare."""
    roi, binning, gauss = json.loads(layout)
    bx, by = binning["x"], binning["y"]
    # Sensor coordinates of the centre of each (binned) pixel.
    xs = roi["topleft"]["x"] + (np.arange(g.width) + 0.5) * bx - 0.5
    ys = roi["topleft"]["y"] + (np.arange(g.height) + 0.5) * by - 0.5
    base = np.zeros((g.height, g.width))
    for peak in gauss["peaks"]:
        sigma = peak["fwhm"] / (2 * np.sqrt(2 * np.log(2)))
        gx = np.exp(-((xs - peak["x0"]) ** 2) / (2 * sigma**2))
        gy = np.exp(-((ys - peak["y0"]) ** 2) / (2 * sigma**2))
        base += peak["max"] * np.outer(gy, gx)
    patterns = np.empty((nb, *g.shape), dtype=g.dtype)
    for p in range(nb):
        values = base * (1.0 + gauss["grow_factor"] * p) + 1 + (p % 7)
        for c in range(g.channels):
            patterns[p, c] = _clip_cast(values * (c + 1), g.dtype)
    patterns.flags.writeable = False
    return patterns


def _clip_cast(values: npt.NDArray[np.float64], dtype: np.dtype) -> npt.NDArray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


class FrameGenerator:
    """Prefetched patterns and the index stamp (see the module docstring)."""

    def __init__(self, acq_params: dict[str, Any], sensor_width: int, sensor_height: int) -> None:
        self.geometry = geometry_from_params(acq_params, sensor_width, sensor_height)
        img, det = acq_params["img"], acq_params["det"]
        self.patterns = _patterns(
            self.geometry,
            json.dumps([img["roi"], img["binning"], det["generator"]["gauss"]], sort_keys=True),
            det["nb_prefetch_frames"],
        )
        self.stamp_width = min(STAMP_DIGITS, self.geometry.width)

    def frame(self, idx: int) -> npt.NDArray:
        """Frame ``idx`` as ``(channels, height, width)``."""
        return self.frames(np.array([idx]))[0]

    def frames(self, indices: npt.NDArray[np.integer]) -> npt.NDArray:
        """A stack of frames ``(n, channels, height, width)`` for global ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        out = self.patterns[indices % len(self.patterns)]
        digits = (indices[:, None] >> (8 * np.arange(self.stamp_width, dtype=np.int64))) & 0xFF
        out[:, 0, 0, : self.stamp_width] = digits.astype(out.dtype)
        return out


def stamped_index(frame: npt.NDArray) -> int:
    """Recover the global index stamped into a frame (``(c, h, w)`` or ``(h, w)``)."""
    row = frame[0, 0] if frame.ndim == 3 else frame[0]
    digits = np.asarray(row[:STAMP_DIGITS]).astype(np.int64) & 0xFF
    return int(sum(int(d) << (8 * k) for k, d in enumerate(digits)))


def dispatch_pattern(nb_receivers: int) -> npt.NDArray[np.int64]:
    """Receiver of frame ``i`` in ``predictive_random`` mode is ``pattern[i % len]``.

    The pattern is ``[i, j for i in range(N) for j in range(N)]``: deterministic but
    not round robin, so that clients must follow the frame-index channel.
    """
    return np.array([r for i in range(nb_receivers) for j in range(nb_receivers) for r in (i, j)], dtype=np.int64)


def receiver_of(frame_idx: npt.ArrayLike, nb_receivers: int, dispatch_mode: str) -> npt.NDArray[np.int64]:
    """Rank of the receiver that gets each global frame index."""
    idx = np.asarray(frame_idx, dtype=np.int64)
    if dispatch_mode == ROUND_ROBIN_DISPATCH:
        return idx % nb_receivers
    pattern = dispatch_pattern(nb_receivers)
    return pattern[idx % len(pattern)]


def share(rank: int, nb_receivers: int, dispatch_mode: str, start: int, stop: int) -> npt.NDArray[np.int64]:
    """Global indices in ``[start, stop)`` that receiver ``rank`` gets, in order."""
    if dispatch_mode == ROUND_ROBIN_DISPATCH:
        first = start + ((rank - start) % nb_receivers)
        return np.arange(first, stop, nb_receivers, dtype=np.int64)
    idx = np.arange(start, stop, dtype=np.int64)
    return idx[receiver_of(idx, nb_receivers, dispatch_mode) == rank]
