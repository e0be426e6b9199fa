"""What the simulated SMX, XPCS and FAI pipelines compute from a frame (numpy, no Tango).

Every function works on a batch of 2-D frames ``(n, height, width)`` (channel 0) and is
documented so that a test can recompute it independently:

- **Radial bins**: pixel ``(y, x)`` has radius ``hypot(x + 0.5 - width / 2, y + 0.5 -
  height / 2)`` from the beam centre (the frame centre); its bin is ``floor(radius)``;
  there are ``max bin + 1`` bins.
- **FAI** ``fai_averint``: per bin, the mean of the pixels of that bin (float32), divided
  by ``normalization_factor``.
- **SMX** peak finding, a sigma clipping: start with every pixel as background; ``cycle``
  times, ``threshold = mean + cutoff_pick * max(std, noise)`` of the background pixels
  and the background becomes the pixels ``<= threshold``. Peaks are the pixels
  ``> threshold`` (the last one), their intensity the pixel value (float32); the sparse
  frame also carries the per-bin mean and standard deviation of the background pixels
  (0 for a bin with none).
- **XPCS** processing: the frame minus its median (floored), clipped at 0, in the input
  type; the sparse frame is its non-zero pixels, the fill factor their number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class RadialBins:
    """Pixels grouped by integer radius around the frame centre."""

    width: int
    height: int
    bins: npt.NDArray[np.int64]  # (height * width,) bin of each pixel
    counts: npt.NDArray[np.int64]  # (nb_bins,) pixels per bin
    order: npt.NDArray[np.int64]  # pixel indices sorted by bin
    starts: npt.NDArray[np.int64]  # first position in ``order`` of each non-empty bin
    filled: npt.NDArray[np.int64]  # the non-empty bins

    @staticmethod
    def of(width: int, height: int) -> RadialBins:
        yy, xx = np.mgrid[0:height, 0:width]
        radius = np.hypot(xx + 0.5 - width / 2, yy + 0.5 - height / 2)
        bins = np.floor(radius).astype(np.int64).reshape(-1)
        counts = np.bincount(bins)
        order = np.argsort(bins, kind="stable")
        filled = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts[filled])[:-1]]).astype(np.int64)
        return RadialBins(width, height, bins, counts, order, starts, filled)

    @property
    def nb_bins(self) -> int:
        return len(self.counts)

    def average(self, frames: npt.NDArray) -> npt.NDArray[np.float32]:
        """Per-bin mean of a batch ``(n, h, w)``: ``(n, nb_bins)`` (NaN for an empty bin)."""
        out = np.full((len(frames), self.nb_bins), np.nan)
        for k, frame in enumerate(frames):
            sums = np.bincount(self.bins, weights=frame.reshape(-1), minlength=self.nb_bins)
            out[k, self.filled] = sums[self.filled] / self.counts[self.filled]
        return out.astype(np.float32)


def azimuthal_average(frames: npt.NDArray, bins: RadialBins, normalization: float = 1.0) -> npt.NDArray[np.float32]:
    """FAI: the azimuthal average of each frame, ``(n, nb_bins)`` float32."""
    out = bins.average(frames)
    return out / np.float32(normalization) if normalization != 1.0 else out


@dataclass(frozen=True)
class Peaks:
    """The SMX result for one frame."""

    index: npt.NDArray[np.int32]
    intensity: npt.NDArray[np.float32]
    background_avg: npt.NDArray[np.float32]
    background_std: npt.NDArray[np.float32]


HISTOGRAM_LIMIT = 1 << 20
"""Integer frames whose values stay below this are clipped on their histogram."""


def find_peaks(frame: npt.NDArray, bins: RadialBins, cutoff_pick: float, cycle: int, noise: float) -> Peaks:
    """SMX peak finding on one 2-D frame (see the module docstring)."""
    flat = frame.reshape(-1)
    if np.issubdtype(flat.dtype, np.integer) and flat.size and 0 <= flat.min() and flat.max() < HISTOGRAM_LIMIT:
        threshold = _clip_on_histogram(np.bincount(flat), cutoff_pick, cycle, noise)
    else:
        threshold = _clip_on_pixels(flat.astype(np.float64), cutoff_pick, cycle, noise)
    peaks = np.flatnonzero(flat > threshold)
    values = flat[peaks].astype(np.float64)
    # background per bin = all pixels of the bin minus its peaks
    n_bg = bins.counts - np.bincount(bins.bins[peaks], minlength=bins.nb_bins)
    s1 = np.bincount(bins.bins, weights=flat, minlength=bins.nb_bins)
    s2 = np.bincount(bins.bins, weights=np.square(flat, dtype=np.float64), minlength=bins.nb_bins)
    s1 -= np.bincount(bins.bins[peaks], weights=values, minlength=bins.nb_bins)
    s2 -= np.bincount(bins.bins[peaks], weights=values**2, minlength=bins.nb_bins)
    safe = np.maximum(n_bg, 1)
    avg = np.where(n_bg > 0, s1 / safe, 0.0)
    std = np.where(n_bg > 0, np.sqrt(np.maximum(s2 / safe - avg**2, 0.0)), 0.0)
    return Peaks(peaks.astype(np.int32), values.astype(np.float32), avg.astype(np.float32), std.astype(np.float32))


def _clip_on_pixels(values: npt.NDArray[np.float64], cutoff_pick: float, cycle: int, noise: float) -> float:
    background = np.ones(values.shape, dtype=bool)
    threshold = np.inf
    for _ in range(max(1, cycle)):
        kept = values[background]
        if not len(kept):
            break
        threshold = kept.mean() + cutoff_pick * max(kept.std(), noise)
        background = values <= threshold
    return float(threshold)


def _clip_on_histogram(counts: npt.NDArray[np.int64], cutoff_pick: float, cycle: int, noise: float) -> float:
    """The same clipping on an integer frame's histogram (``counts[v]`` pixels of value v)."""
    values = np.arange(len(counts), dtype=np.float64)
    c0 = np.cumsum(counts, dtype=np.float64)
    c1 = np.cumsum(counts * values)
    c2 = np.cumsum(counts * values**2)
    top = len(counts) - 1
    threshold = np.inf
    for _ in range(max(1, cycle)):
        j = top if threshold == np.inf else min(top, int(np.floor(threshold)))
        if j < 0 or c0[j] == 0:
            break
        mean = c1[j] / c0[j]
        std = np.sqrt(max(c2[j] / c0[j] - mean * mean, 0.0))
        threshold = mean + cutoff_pick * max(std, noise)
    return float(threshold)


def peak_image(peaks: Peaks, height: int, width: int) -> npt.NDArray[np.float32]:
    """A zero frame with the peak intensities placed."""
    out = np.zeros(height * width, dtype=np.float32)
    out[peaks.index] = peaks.intensity
    return out.reshape(height, width)


def xpcs_process(frames: npt.NDArray) -> npt.NDArray:
    """XPCS: each frame ``(n, c, h, w)`` minus its channel-0 median (floored), clipped at 0."""
    out = np.empty_like(frames)
    for k, frame in enumerate(frames):
        m = floored_median(frame[0])
        np.subtract(frame, frame.dtype.type(m), out=out[k], where=frame > m)
        out[k][frame <= m] = 0
    return out


def floored_median(frame: npt.NDArray) -> float:
    """``floor(median)`` of a frame; exact, from the histogram for small non-negative integers."""
    flat = frame.reshape(-1)
    if np.issubdtype(flat.dtype, np.integer) and flat.size and 0 <= flat.min() and flat.max() < HISTOGRAM_LIMIT:
        cum = np.cumsum(np.bincount(flat))
        n = flat.size
        upper = int(np.searchsorted(cum, n // 2 + 1))  # value at sorted position n // 2
        if n % 2:
            return float(upper)
        lower = int(np.searchsorted(cum, n // 2))  # value at sorted position n // 2 - 1
        return float((lower + upper) // 2)
    return float(np.floor(np.median(flat)))


def sparse_of(frame: npt.NDArray) -> tuple[npt.NDArray[np.int32], npt.NDArray]:
    """Flat indices and values of the non-zero pixels of a 2-D frame."""
    flat = frame.reshape(-1)
    index = np.flatnonzero(flat)
    return index.astype(np.int32), flat[index]
