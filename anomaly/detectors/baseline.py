"""Robust expected values and noise scales for batches of regular series.

With enough history the expected value of a bucket is the median of the same minute-of-day over the
previous days (same minute-of-week over previous weeks once three weeks exist), lightly smoothed across
neighbouring minutes. The median over days shrugs off yesterday's incident; the smoothing keeps one noisy
day from becoming the baseline. Without that history (a new route, the first days) a median of recent
15-minute blocks stands in. Everything works on (series, time) arrays so one call covers a whole metric family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from anomaly.detectors.evidence import FloatArray, PointScores, clean_severity
from anomaly.detectors.presets import MetricPreset, Transform

BoolArray = npt.NDArray[np.bool_]

MAD_TO_SIGMA = 1.4826
WEEKLY_LAG_DAYS = (7, 14, 21, 28)
# Noise scales are estimated on every Nth bucket of the reference days.
_SCALE_SAMPLE_STRIDE = 4
# With k reference days, deviations from their own median understate sigma (for odd k one deviation is
# always zero) and the median itself is uncertain. Measured by simulation on Gaussian noise, per k:
# E[min(|x - median|, 3 * s0)] / sigma, with s0 the raw pooled MAD scale, and Var(median) / sigma**2.
_MEDIAN_OF_K = {
    2: (0.5648, 0.506),
    3: (0.4923, 0.443),
    4: (0.6509, 0.295),
    5: (0.6493, 0.281),
    6: (0.6952, 0.212),
    7: (0.6971, 0.209),
}
# Noise is estimated over this many buckets either side of the same time of day: a p95 is noisier at
# night when fewer calls make it up.
SCALE_HALF_WIDTH_MINUTES = 60
SMOOTH_HALF_WIDTH_MINUTES = 7
# Cold start: the last FALLBACK_BLOCKS blocks of FALLBACK_BLOCK_MINUTES each (an hour).
FALLBACK_BLOCK_MINUTES = 15
FALLBACK_BLOCKS = 4


@dataclass(frozen=True, slots=True)
class Baseline:
    """Expected value and per-point noise scale, both (series, time) in transformed units."""

    expected: FloatArray
    scale: FloatArray
    seasonal: BoolArray


def transform(values: FloatArray, kind: Transform) -> FloatArray:
    """Multiplicative metrics go to log space; non-positive values there are undefined, hence NaN."""
    if kind == "identity":
        return np.where(np.isfinite(values), values, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.log(values)
    out[~np.isfinite(out)] = np.nan
    return out


def nanmedian_small_axis(values: FloatArray, axis: int) -> FloatArray:
    """Median ignoring NaN along a short axis; np.nanmedian is ~10x slower for this shape."""
    ordered = np.sort(values, axis=axis)  # NaN sorts last
    valid = np.sum(np.isfinite(values), axis=axis, keepdims=True)
    lo = np.take_along_axis(ordered, np.maximum((valid - 1) // 2, 0), axis=axis)
    hi = np.take_along_axis(ordered, np.maximum(valid // 2, 0), axis=axis)
    hi = np.where(valid % 2 == 1, lo, hi)
    out = np.squeeze((lo + hi) / 2.0, axis=axis)
    out[np.squeeze(valid, axis=axis) == 0] = np.nan
    return out


def _nanmedian_across_days(reference: FloatArray) -> FloatArray:
    """Median ignoring NaN over axis 1 of (series, days, buckets) for a handful of days.

    A compare-exchange network over whole (series, buckets) slabs sorts the days elementwise (NaN as +inf,
    i.e. last, as :func:`nanmedian_small_axis` sorts them), so no transposed copy of the week is needed.
    """
    valid = np.isfinite(reference).sum(axis=1)
    slabs = [np.where(np.isnan(reference[:, i, :]), np.inf, reference[:, i, :]) for i in range(reference.shape[1])]
    k = len(slabs)
    for end in range(k - 1, 0, -1):
        for j in range(end):
            low = np.minimum(slabs[j], slabs[j + 1])
            np.maximum(slabs[j], slabs[j + 1], out=slabs[j + 1])
            slabs[j] = low
    lo = _pick(slabs, np.maximum((valid - 1) // 2, 0))
    hi = np.where(valid % 2 == 1, lo, _pick(slabs, np.maximum(valid // 2, 0)))
    out = (lo + hi) / 2.0
    out[valid == 0] = np.nan
    return out


def _pick(slabs: list[FloatArray], rank: npt.NDArray[np.int64]) -> FloatArray:
    """Elementwise ``slabs[rank]``: one masked copy per slab instead of stacking them into a 3-D array."""
    out = slabs[0].copy()
    for j in range(1, len(slabs)):
        np.copyto(out, slabs[j], where=rank == j)
    return out


def _moving_nanmean(values: FloatArray, half_width: int) -> FloatArray:
    """Centered moving mean along the last axis, ignoring NaN and truncating the window at the edges."""
    if half_width <= 0:
        return values
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    pad = [(0, 0)] * (values.ndim - 1) + [(1, 0)]
    csum = np.pad(np.cumsum(filled, axis=-1), pad)
    ccount = np.pad(np.cumsum(finite, axis=-1), pad)
    n = values.shape[-1]
    hi = np.minimum(np.arange(n) + half_width + 1, n)
    lo = np.maximum(np.arange(n) - half_width, 0)
    total = csum[..., hi] - csum[..., lo]
    count = ccount[..., hi] - ccount[..., lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _seasonal_part(
    x: FloatArray,
    periods_per_day: int,
    *,
    min_days: int,
    max_days: int,
    weekly_after_days: int,
    smooth: int,
    scale_half_width: int,
    start: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """Expected value and point scale from the same bucket on previous days; NaN where not available.

    Only buckets from ``start`` on are computed and returned (width ``n_time - start``): a periodic job
    needs today's expectations, not last week's, and the days it skips were the bulk of the work.
    """
    n_series, n_time = x.shape
    n_days = -(-n_time // periods_per_day)
    first_day = start // periods_per_day
    # Reference days reach back at most max_days (or four weeks once weekly lags apply).
    reach = WEEKLY_LAG_DAYS[-1] if n_days - 1 >= weekly_after_days else max_days
    ref_first = max(0, first_day - reach)
    if n_time == n_days * periods_per_day and ref_first == 0:
        days = x.reshape(n_series, n_days, periods_per_day)
    else:
        padded = np.full((n_series, (n_days - ref_first) * periods_per_day), np.nan, dtype=x.dtype)
        padded[:, : n_time - ref_first * periods_per_day] = x[:, ref_first * periods_per_day :]
        days = padded.reshape(n_series, n_days - ref_first, periods_per_day)
    expected = np.full((n_series, n_days - first_day, periods_per_day), np.nan, dtype=x.dtype)
    scale = np.full_like(expected, np.nan)
    for day in range(max(min_days, first_day), n_days):
        if day >= weekly_after_days:
            lags = [lag for lag in WEEKLY_LAG_DAYS if lag <= day]
        else:
            lags = list(range(1, min(max_days, day) + 1))
        # (series, day, bucket-of-day): only the reference days are gathered (whole-day slabs, no transposed
        # copy of the week), and the median over days runs elementwise across buckets.
        reference = days[:, [day - lag - ref_first for lag in lags], :]
        median = _nanmedian_across_days(reference)
        k = len(lags)
        consistency, median_variance = _MEDIAN_OF_K[min(max(k, 2), 7)]
        # Noise is estimated on every 4th bucket and spread back: it varies over hours, not minutes.
        deviation = np.abs(reference[:, :, ::_SCALE_SAMPLE_STRIDE] - median[:, None, ::_SCALE_SAMPLE_STRIDE])
        pooled = MAD_TO_SIGMA * nanmedian_small_axis(deviation.reshape(n_series, -1), axis=1)
        # Clipped mean absolute deviation around this time of day: robust to a past incident, local
        # enough to follow the daily swing in noise.
        clipped = np.fmin(deviation, 3.0 * pooled[:, None, None])
        finite = np.isfinite(clipped)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_bucket = np.where(finite, clipped, 0.0).sum(axis=1) / finite.sum(axis=1)
        sampled_sigma = _moving_nanmean(per_bucket, max(1, scale_half_width // _SCALE_SAMPLE_STRIDE)) / consistency
        sigma = np.repeat(sampled_sigma, _SCALE_SAMPLE_STRIDE, axis=1)[:, :periods_per_day]
        smoothed = _moving_nanmean(median, smooth)
        # The expected value itself is uncertain; smoothing over neighbours only helps against the
        # uncorrelated part of the noise, so count a third of the window as independent.
        inflation = np.sqrt(1.0 + median_variance / max(1.0, (2 * smooth + 1) / 3.0))
        expected[:, day - first_day, :] = smoothed
        scale[:, day - first_day, :] = sigma * inflation
    offset = first_day * periods_per_day
    flat_expected = expected.reshape(n_series, -1)[:, start - offset : n_time - offset]
    flat_scale = scale.reshape(n_series, -1)[:, start - offset : n_time - offset]
    return flat_expected, flat_scale


def _trailing_blocks(x: FloatArray, block: int, blocks: int, start: int = 0) -> tuple[FloatArray, FloatArray]:
    """Cold-start baseline from strictly past data: medians of ``block``-bucket blocks.

    Expected value at t: median of the last ``blocks`` complete block medians before t's block. Scale:
    median of those blocks' MADs (point noise) combined with the spread of the block medians (how
    much the level moves within the window). Blocks keep this vectorised and cheap; a per-bucket
    rolling median over a million-column batch was the slowest part of a sweep. Returns columns from
    ``start`` on; only the blocks those need are computed.
    """
    aligned = max(0, (start // block - blocks) * block)
    if aligned:
        expected, sigma = _trailing_blocks(x[:, aligned:], block, blocks)
        return expected[:, start - aligned :], sigma[:, start - aligned :]
    n_series, n_time = x.shape
    n_blocks = -(-n_time // block)
    padded = np.full((n_series, n_blocks * block), np.nan)
    padded[:, :n_time] = x
    chunks = padded.reshape(n_series, n_blocks, block)
    block_median = nanmedian_small_axis(chunks, axis=2)
    block_mad = nanmedian_small_axis(np.abs(chunks - block_median[:, :, None]), axis=2)
    # Window of the previous ``blocks`` blocks for every block (NaN-padded at the start).
    lagged_median = np.full((n_series, n_blocks, blocks), np.nan)
    lagged_mad = np.full((n_series, n_blocks, blocks), np.nan)
    for lag in range(1, blocks + 1):
        lagged_median[:, lag:, lag - 1] = block_median[:, :-lag]
        lagged_mad[:, lag:, lag - 1] = block_mad[:, :-lag]
    expected = nanmedian_small_axis(lagged_median, axis=2)
    point_sigma = MAD_TO_SIGMA * nanmedian_small_axis(lagged_mad, axis=2)
    level_sigma = MAD_TO_SIGMA * nanmedian_small_axis(np.abs(lagged_median - expected[:, :, None]), axis=2)
    sigma = np.sqrt(point_sigma**2 * (1.0 + np.pi / (2.0 * block * blocks)) + level_sigma**2)
    expand = np.repeat(np.arange(n_blocks), block)[start:n_time]
    return expected[:, expand], sigma[:, expand]


def seasonal_baseline(
    x: FloatArray,
    *,
    periods_per_day: int | None,
    min_scale: float,
    relative_floor: float = 0.0,
    min_days: int = 3,
    max_days: int = 7,
    weekly_after_days: int = 21,
    start: int = 0,
) -> Baseline:
    """Expected value and noise scale for every bucket of a (series, time) batch in transformed units.

    Smoothing and scale windows are defined in minutes and converted to buckets of the series' cadence.
    The whole of ``x`` is history; the returned arrays cover buckets ``start`` to the end only.
    """
    n_series, n_time = x.shape
    start = min(max(start, 0), n_time)
    buckets_per_minute = (periods_per_day or 1440) / 1440.0
    smooth = round(SMOOTH_HALF_WIDTH_MINUTES * buckets_per_minute)
    scale_half_width = max(1, round(SCALE_HALF_WIDTH_MINUTES * buckets_per_minute))
    fallback_block = max(2, round(FALLBACK_BLOCK_MINUTES * buckets_per_minute))
    width = n_time - start
    expected = np.full((n_series, width), np.nan, dtype=x.dtype)
    scale = np.full((n_series, width), np.nan, dtype=x.dtype)
    if periods_per_day and n_time > min_days * periods_per_day:
        expected, scale = _seasonal_part(
            x,
            periods_per_day,
            min_days=min_days,
            max_days=max_days,
            weekly_after_days=weekly_after_days,
            smooth=smooth,
            scale_half_width=scale_half_width,
            start=start,
        )
    seasonal = np.isfinite(expected) & np.isfinite(scale)
    missing_cols = np.flatnonzero(~seasonal.all(axis=0))
    if missing_cols.size:
        # Only the columns up to the last one lacking a seasonal value need the cold-start path.
        stop = int(missing_cols[-1]) + 1
        roll_expected, roll_scale = _trailing_blocks(x[:, : start + stop], fallback_block, FALLBACK_BLOCKS, start)
        expected[:, :stop] = np.where(seasonal[:, :stop], expected[:, :stop], roll_expected)
        scale[:, :stop] = np.where(seasonal[:, :stop], scale[:, :stop], roll_scale)
    scale = np.fmax(scale, min_scale)
    if relative_floor > 0:
        scale = np.fmax(scale, relative_floor * np.abs(expected))
    return Baseline(expected=expected, scale=scale, seasonal=seasonal)


def robust_z(x: FloatArray, baseline: Baseline) -> FloatArray:
    """Signed robust z-score of each bucket; NaN where the value or the baseline is unknown."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x - baseline.expected) / baseline.scale


def directional(z: FloatArray, direction: str) -> FloatArray:
    """Keep the side of the statistic that matters for the metric (e.g. only slower latency)."""
    if direction == "up":
        return z
    if direction == "down":
        return -z
    return np.abs(z)


def deviation_scores(values: FloatArray, baseline: Baseline, preset: MetricPreset) -> tuple[PointScores, FloatArray]:
    """Point-wise robust z against the baseline; also returns the signed z for change-point methods.

    Severity needs both a large z and (per preset) a minimum relative change, so a very quiet series
    cannot page for a 2% wobble that happens to be ten sigmas.
    """
    x = transform(values, preset.transform)
    z = robust_z(x, baseline)
    severity = clean_severity(directional(z, preset.direction) / preset.z_threshold)
    if preset.min_relative_change > 0:
        # Only points that could breach need the (costly) relative-change gate.
        candidates = severity >= 0.5
        residual = x[candidates] - baseline.expected[candidates]
        if preset.transform == "log":
            change = np.abs(np.expm1(residual))
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                change = np.abs(residual) / np.abs(baseline.expected[candidates])
        severity[candidates] = np.fmin(
            severity[candidates], np.nan_to_num(change, nan=0.0) / preset.min_relative_change
        )
    scores = PointScores(
        method="robust_baseline",
        observed=values,
        severity=severity,
        center=baseline.expected,
        half_width=preset.z_threshold * baseline.scale,
        log_scale=preset.transform == "log",
    )
    return scores, z
