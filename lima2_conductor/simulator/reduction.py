"""Legacy pipeline reduced data, computed with numpy on batches of frames.

Rows follow the Lima2 dtype ``frame_idx i4, recv_idx i4, min f4, max f4, avg f4,
std f4, sum f8``. Statistics: one row per ROI per frame, ROIs ordered
``rect_rois + arc_rois``. Profiles: one row per profile point; a horizontal profile
has one point per column of its ROI (statistics over the rows), a vertical one one
point per row. Computed on channel 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.lima2 import FRAME_IDX_DTYPE, STATS_DTYPE  # noqa: F401 - re-exported: the Lima2 row dtypes


@dataclass
class Region:
    """A rectangle ``[y0:y1, x0:x1]`` and, for arcs, a boolean mask inside it."""

    y0: int
    y1: int
    x0: int
    x1: int
    mask: npt.NDArray[np.bool_] | None = None


@dataclass
class Reducer:
    """ROI statistics and profiles configured from ``proc_params``."""

    stats_regions: list[Region] = field(default_factory=list)
    profiles: list[tuple[Region, str]] = field(default_factory=list)

    @staticmethod
    def from_params(proc_params: dict[str, Any], width: int, height: int) -> Reducer:
        """Build from ``statistics`` and ``profiles``; ``ValueError`` names a bad ROI."""
        red = Reducer()
        stats = proc_params["statistics"]
        if stats["enabled"]:
            for k, roi in enumerate(stats["rect_rois"]):
                red.stats_regions.append(_rect_region(roi, width, height, f"statistics.rect_rois[{k}]"))
            for k, arc in enumerate(stats["arc_rois"]):
                red.stats_regions.append(_arc_region(arc, width, height, f"statistics.arc_rois[{k}]"))
        prof = proc_params["profiles"]
        if prof["enabled"]:
            if len(prof["rois"]) != len(prof["directions"]):
                raise ValueError(f"profiles: {len(prof['rois'])} rois but {len(prof['directions'])} directions")
            for k, (roi, direction) in enumerate(zip(prof["rois"], prof["directions"], strict=True)):
                red.profiles.append((_rect_region(roi, width, height, f"profiles.rois[{k}]"), direction))
        return red

    @property
    def profile_lengths(self) -> list[int]:
        return [(r.x1 - r.x0) if d == "horizontal" else (r.y1 - r.y0) for r, d in self.profiles]

    def statistics(self, frames: npt.NDArray, indices: npt.NDArray, rank: int) -> npt.NDArray:
        """Rows ``(n * n_rois)`` for a stack ``(n, c, h, w)``, frame-major."""
        n, nr = len(indices), len(self.stats_regions)
        out = np.empty((n, nr), dtype=STATS_DTYPE)
        out["frame_idx"] = indices[:, None]
        out["recv_idx"] = rank
        for k, reg in enumerate(self.stats_regions):
            block = frames[:, 0, reg.y0 : reg.y1, reg.x0 : reg.x1]
            values = block.reshape(n, -1) if reg.mask is None else block[:, reg.mask]
            _fill(out[:, k], values.astype(np.float64, copy=False), axis=1)
        return out.reshape(-1)

    def profile_rows(self, frames: npt.NDArray, indices: npt.NDArray, rank: int) -> npt.NDArray:
        """Rows ``(n * sum(lengths))`` for a stack, frame-major, profiles concatenated."""
        n = len(indices)
        out = np.empty((n, sum(self.profile_lengths)), dtype=STATS_DTYPE)
        out["frame_idx"] = indices[:, None]
        out["recv_idx"] = rank
        offset = 0
        for reg, direction in self.profiles:
            block = frames[:, 0, reg.y0 : reg.y1, reg.x0 : reg.x1].astype(np.float64)
            axis = 1 if direction == "horizontal" else 2
            length = block.shape[2] if direction == "horizontal" else block.shape[1]
            _fill(out[:, offset : offset + length], block, axis=axis)
            offset += length
        return out.reshape(-1)


def _fill(target: npt.NDArray, values: npt.NDArray[np.float64], axis: int) -> None:
    target["min"] = values.min(axis=axis)
    target["max"] = values.max(axis=axis)
    total = values.sum(axis=axis)
    count = values.shape[axis]
    mean = total / count
    target["avg"] = mean
    target["sum"] = total
    sq = np.einsum("...i,...i->...", np.moveaxis(values, axis, -1), np.moveaxis(values, axis, -1))
    target["std"] = np.sqrt(np.maximum(sq / count - mean * mean, 0.0))


def _rect_region(roi: dict[str, Any], width: int, height: int, where: str) -> Region:
    x, y = roi["topleft"]["x"], roi["topleft"]["y"]
    w, h = roi["dimensions"]["x"], roi["dimensions"]["y"]
    if w <= 0 or h <= 0 or x + w > width or y + h > height:
        raise ValueError(f"{where}: {x},{y} {w}x{h} is outside the {width}x{height} frame")
    return Region(y, y + h, x, x + w)


def _arc_region(arc: dict[str, Any], width: int, height: int, where: str) -> Region:
    cx, cy, r1, r2 = arc["center"]["x"], arc["center"]["y"], arc["r1"], arc["r2"]
    if r2 <= r1:
        raise ValueError(f"{where}: r2 ({r2}) must be greater than r1 ({r1})")
    x0, x1 = max(0, int(np.floor(cx - r2))), min(width, int(np.ceil(cx + r2)) + 1)
    y0, y1 = max(0, int(np.floor(cy - r2))), min(height, int(np.ceil(cy + r2)) + 1)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"{where}: the arc lies outside the {width}x{height} frame")
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dx, dy = xx - cx, yy - cy
    r = np.hypot(dx, dy)
    angle = np.degrees(np.arctan2(dy, dx))
    a1, a2 = arc["a1"], arc["a2"]
    span = (a2 - a1) % 360 if (a2 - a1) % 360 else 360.0
    in_angle = ((angle - a1) % 360) <= span
    mask = (r >= r1) & (r <= r2) & in_angle
    if not mask.any():
        raise ValueError(f"{where}: the arc covers no pixel")
    return Region(y0, y1, x0, x1, mask)
