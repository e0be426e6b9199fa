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
        flat = frames.reshape(len(frames), -1).astype(np.float64)[:, self.order]
        sums = np.add.reduceat(flat, self.starts, axis=1)
        out = np.full((len(frames), self.nb_bins), np.nan)
        out[:, self.filled] = sums / self.counts[self.filled]
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


def find_peaks(frame: npt.NDArray, bins: RadialBins, cutoff_pick: float, cycle: int, noise: float) -> Peaks:
    """SMX peak finding on one 2-D frame (see the module docstring)."""
    values = frame.reshape(-1).astype(np.float64)
    background = np.ones(values.shape, dtype=bool)
    threshold = np.inf
    for _ in range(max(1, cycle)):
        kept = values[background]
        if not len(kept):
            break
        threshold = kept.mean() + cutoff_pick * max(kept.std(), noise)
        background = values <= threshold
    peaks = np.flatnonzero(~background)
    n_bg = np.bincount(bins.bins[background], minlength=bins.nb_bins)
    s1 = np.bincount(bins.bins[background], weights=values[background], minlength=bins.nb_bins)
    s2 = np.bincount(bins.bins[background], weights=values[background] ** 2, minlength=bins.nb_bins)
    safe = np.maximum(n_bg, 1)
    avg = np.where(n_bg > 0, s1 / safe, 0.0)
    std = np.where(n_bg > 0, np.sqrt(np.maximum(s2 / safe - avg**2, 0.0)), 0.0)
    return Peaks(
        peaks.astype(np.int32),
        values[peaks].astype(np.float32),
        avg.astype(np.float32),
        std.astype(np.float32),
    )


def peak_image(peaks: Peaks, height: int, width: int) -> npt.NDArray[np.float32]:
    """A zero frame with the peak intensities placed."""
    out = np.zeros(height * width, dtype=np.float32)
    out[peaks.index] = peaks.intensity
    return out.reshape(height, width)


def xpcs_process(frames: npt.NDArray) -> npt.NDArray:
    """XPCS: each frame ``(n, c, h, w)`` minus its channel-0 median (floored), clipped at 0."""
    n = len(frames)
    med = np.floor(np.median(frames[:, 0].reshape(n, -1), axis=1))
    out = frames.astype(np.float64) - med[:, None, None, None]
    return np.clip(out, 0, None).astype(frames.dtype)


def sparse_of(frame: npt.NDArray) -> tuple[npt.NDArray[np.int32], npt.NDArray]:
    """Flat indices and values of the non-zero pixels of a 2-D frame."""
    flat = frame.reshape(-1)
    index = np.flatnonzero(flat)
    return index.astype(np.int32), flat[index]
