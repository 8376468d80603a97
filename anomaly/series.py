"""Regular time grids for metric series.

Detectors assume one value per fixed step (a rollup bucket). Rollups and CSV files have holes: a minute
with no calls has no row. This module puts observations on a regular grid (NaN where nothing was
observed) and remembers where each input row landed, so results can be reported back per input row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SECONDS_PER_DAY = 86_400
# A grid far longer than its input means the cadence was mis-inferred (e.g. one stray timestamp far
# away); refusing is kinder than allocating gigabytes.
MAX_GRID_EXPANSION = 1_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class RegularGrid:
    """A regular time axis: ``length`` buckets of ``step`` seconds from ``start`` (epoch seconds)."""

    start: int
    step: int
    length: int

    def timestamps(self) -> IntArray:
        return self.start + self.step * np.arange(self.length, dtype=np.int64)

    @property
    def periods_per_day(self) -> int | None:
        """Buckets per day when the step divides a day and leaves room for intra-day structure."""
        if self.step <= 0 or SECONDS_PER_DAY % self.step or SECONDS_PER_DAY // self.step < 4:
            return None
        return SECONDS_PER_DAY // self.step


def to_epoch_seconds(timestamps: npt.ArrayLike) -> IntArray:
    """Accept epoch seconds (int/float) or datetime64 values and return int64 epoch seconds."""
    arr = np.asarray(timestamps)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[s]").astype(np.int64)
    return np.asarray(np.rint(arr.astype(np.float64)), dtype=np.int64)


def infer_step(epoch_seconds: IntArray) -> int:
    """The most common positive spacing between sorted timestamps (robust to gaps and duplicates)."""
    if epoch_seconds.size < 2:
        return 60
    diffs = np.diff(np.unique(epoch_seconds))
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        return 60
    values, counts = np.unique(diffs, return_counts=True)
    return int(values[np.argmax(counts)])


def regularize(
    timestamps: npt.ArrayLike, values: npt.ArrayLike, *, step: int | None = None
) -> tuple[RegularGrid, FloatArray, IntArray]:
    """Place ``values`` on a regular grid; duplicates in one bucket are averaged.

    Returns the grid, the gridded values (NaN where no observation) and, for each input row, the grid
    index it landed on. Input order does not matter.
    """
    epoch = to_epoch_seconds(timestamps)
    vals = np.asarray(values, dtype=np.float64)
    if epoch.shape != vals.shape or epoch.ndim != 1:
        raise ValueError("timestamps and values must be 1-D arrays of the same length")
    if epoch.size == 0:
        return RegularGrid(0, step or 60, 0), np.empty(0), np.empty(0, dtype=np.int64)
    step = step or infer_step(epoch)
    start = int(epoch.min())
    positions = (epoch - start) // step
    length = int(positions.max()) + 1
    if length > MAX_GRID_EXPANSION * max(epoch.size, 1):
        raise ValueError(f"timestamps span {length} buckets of {step}s for {epoch.size} rows; cadence is not regular")
    finite = np.isfinite(vals)
    sums = np.bincount(positions[finite], weights=vals[finite], minlength=length)
    counts = np.bincount(positions[finite], minlength=length)
    with np.errstate(invalid="ignore", divide="ignore"):
        gridded = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return RegularGrid(start, step, length), gridded, positions.astype(np.int64)


def safe_ratio(numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> FloatArray:
    """numerator / denominator with NaN (not inf, not a warning) where the denominator is 0 or missing."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~(np.isfinite(den) & (den > 0))] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out


def as_batch(values: npt.ArrayLike) -> FloatArray:
    """View a single series (T,) or a batch (S, T) as a float 2-D array (S, T)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        return arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError("expected a series (T,) or a batch of series (S, T)")
    return arr
