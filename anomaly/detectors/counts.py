"""Count-aware tests: error/unpriced shares (binomial) and call volume (Poisson).

A z-score on a sparse error-rate series is a z-score on 0/1 noise: one failed call out of two is "50%"
and pages someone. Here the question is instead "how surprising are e errors out of n calls given the
usual rate?", answered with an exact tail probability, so low volume automatically means weak evidence.
Recent buckets are also pooled so a low-volume route can still show a real burst. Counts are quasi-
likelihood scaled by an overdispersion factor learned from history, so naturally bursty series are
judged against their own variability.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

from anomaly.detectors.baseline import MAD_TO_SIGMA, Baseline, nanmedian_small_axis, seasonal_baseline
from anomaly.detectors.evidence import FloatArray, PointScores, clean_severity
from anomaly.detectors.presets import MetricPreset

MAX_Z = 40.0
# Exact tails are computed only where a normal approximation already looks suspicious.
_PREFILTER_Z = 2.0
# Pearson residuals are clipped when learning overdispersion so one burst does not blind the next day.
_PEARSON_CLIP = 9.0
_MAX_DISPERSION = 100.0
# Buckets pooled for the windowed tests: 1 catches a sharp spike at once, the longer windows give a
# low-volume route (a call or two a minute) enough calls to show a burst or a drop at all.
POOLS = (1, 2, 3, 5, 10, 15, 30)
# Traffic wanders slowly (campaigns, retries, a busy afternoon) by about this fraction beyond Poisson
# noise; over a pooled window that wander dominates, so it is added to the variance of pooled counts.
VOLUME_WANDER = 0.1


def _z_from_p(p: FloatArray) -> FloatArray:
    """One-sided p-value to a z-score, stable for tiny p."""
    with np.errstate(divide="ignore"):
        return np.clip(-special.ndtri(np.clip(p, 1e-300, 1.0)), 0.0, MAX_Z)


def _trailing_sum(x: FloatArray, window: int, *, include_current: bool) -> FloatArray:
    """Sum over the trailing ``window`` buckets along time (excluding the current one if asked)."""
    n_series, n_time = x.shape
    csum = np.zeros((n_series, n_time + 1), dtype=x.dtype)
    np.cumsum(x, axis=1, out=csum[:, 1:])
    # Contiguous slices, not fancy indexing: hi = t (+1), lo = max(hi - window, 0).
    hi = csum[:, 1:] if include_current else csum[:, :-1]
    out = hi.copy()
    shift = window - (1 if include_current else 0)
    if shift < n_time:
        out[:, shift:] -= csum[:, : n_time - shift]
    return out


def _cumsum0(x: FloatArray) -> FloatArray:
    """Cumulative sums along time with a leading zero column: sum of x[:, a:b] = c[:, b] - c[:, a]."""
    out = np.zeros((x.shape[0], x.shape[1] + 1), dtype=x.dtype)
    np.cumsum(x, axis=1, out=out[:, 1:])
    return out


def _window_sum(csum: FloatArray, window: int, start: int) -> FloatArray:
    """Trailing sums of ``window`` buckets (current included) for buckets ``start`` on, from :func:`_cumsum0`."""
    n_time = csum.shape[1] - 1
    hi = csum[:, start + 1 :]
    lo_first = start + 1 - window
    if lo_first >= 0:
        return hi - csum[:, lo_first : n_time + 1 - window]
    # The first buckets' windows are truncated at the start of the data.
    lo = np.concatenate([np.zeros((csum.shape[0], -lo_first)), csum[:, : n_time + 1 - window]], axis=1)
    return hi - lo


def binomial_upper_z(
    events: FloatArray, trials: FloatArray, rate: FloatArray, *, where: npt.NDArray[np.bool_] | None = None
) -> FloatArray:
    """z-score of P(X >= events) for X ~ Binomial(trials, rate); 0 where there is no excess (or not ``where``)."""
    out = np.zeros(events.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(trials * rate * (1.0 - rate))
        approx = (events - trials * rate) / np.where(sd > 0, sd, np.nan)
    candidates = (approx > _PREFILTER_Z) & (events >= 1) & (trials >= events) & (rate > 0) & (rate < 1)
    if where is not None:
        candidates &= where
    if candidates.any():
        e, n, p = events[candidates], trials[candidates], rate[candidates]
        out[candidates] = _z_from_p(special.betainc(e, n - e + 1.0, p))
    return out


def poisson_z(counts: FloatArray, mean: FloatArray) -> tuple[FloatArray, FloatArray]:
    """z-scores of P(X >= counts) and P(X <= counts) for X ~ Poisson(mean); 0 where unremarkable."""
    up = np.zeros(counts.shape)
    down = np.zeros(counts.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        approx = (counts - mean) / np.sqrt(np.where(mean > 0, mean, np.nan))
    high = (approx > _PREFILTER_Z) & (counts > 0)
    if high.any():
        up[high] = _z_from_p(special.gammainc(counts[high], mean[high]))
    low = (approx < -_PREFILTER_Z) & (mean > 0)
    if low.any():
        down[low] = _z_from_p(special.gammaincc(counts[low] + 1.0, mean[low]))
    return up, down


def negbin_z(
    counts: FloatArray, mean: FloatArray, inv_shape: FloatArray, *, where: npt.NDArray[np.bool_] | None = None
) -> tuple[FloatArray, FloatArray]:
    """z-scores of P(X >= counts) and P(X <= counts) for a negative binomial with this mean and 1/shape.

    Var = mean + inv_shape * mean**2: gamma-mixed Poisson, the usual model of over-dispersed traffic.
    Unlike a quasi-Poisson rescaling it keeps the lower tail light, so a busy route losing 90% of its
    calls is a near-impossible draw at once rather than after several minutes. Near-zero ``inv_shape``
    falls back to the Poisson tails. Exact tails are computed only ``where`` asked (all by default).
    """
    poisson = inv_shape < 1e-6
    if where is not None:
        counts = np.where(where, counts, mean)  # unremarkable by construction: skipped by the prefilters
    up, down = poisson_z(np.where(poisson, counts, 0.0), np.where(poisson, mean, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(mean + inv_shape * mean**2)
        approx = (counts - mean) / np.where(sd > 0, sd, np.nan)
    # The prefilter is looser than for Poisson: the gamma-mixed lower tail is lighter than a normal one.
    high = ~poisson & (approx > 1.5) & (counts > 0) & (mean > 0)
    low = ~poisson & (approx < -1.5) & (mean > 0)
    if high.any():
        k = 1.0 / inv_shape[high]
        p = k / (k + mean[high])
        up[high] = _z_from_p(special.betainc(counts[high], k, 1.0 - p))
    if low.any():
        k = 1.0 / inv_shape[low]
        p = k / (k + mean[low])
        down[low] = _z_from_p(special.betainc(k, counts[low] + 1.0, p))
    return up, down


def rate_scores(
    events: FloatArray,
    trials: FloatArray,
    preset: MetricPreset,
    *,
    reference_window: int = 1440,
    pools: tuple[int, ...] = POOLS,
    start: int = 0,
) -> PointScores:
    """Binomial excess test of events/trials against the trailing reference rate, per bucket and pooled.

    Scores buckets from ``start`` on (the returned arrays have that width); earlier buckets only feed the
    reference rate and the pooled windows.
    """
    events = np.asarray(events, dtype=np.float64)
    trials = np.asarray(trials, dtype=np.float64)
    start = min(max(start, 0), events.shape[1])
    # The reference rate needs reference_window buckets, and the dispersion averages that many residuals
    # against it: twice the window (plus the longest pool) reproduces the full computation exactly.
    context = max(0, start - 2 * reference_window - max(pools, default=1))
    if context:
        return rate_scores(
            events[:, context:],
            trials[:, context:],
            preset,
            reference_window=reference_window,
            pools=pools,
            start=start - context,
        )
    e = np.nan_to_num(events, nan=0.0)
    n = np.nan_to_num(trials, nan=0.0)
    e = np.clip(e, 0.0, n)  # more errors than calls is a bad row, not an incident
    ref_e = _trailing_sum(e, reference_window, include_current=False)
    ref_n = _trailing_sum(n, reference_window, include_current=False)
    # Half an event of prior keeps a brand-new route (no reference yet) from looking like a 0% baseline.
    rate = (ref_e + 0.5) / (ref_n + 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = (e - n * rate) ** 2 / (n * rate * (1.0 - rate))
    pearson = np.where(n > 0, np.minimum(pearson, _PEARSON_CLIP), 0.0)
    buckets = _trailing_sum((n > 0).astype(np.float64), reference_window, include_current=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        dispersion = _trailing_sum(pearson, reference_window, include_current=False) / buckets
    dispersion = np.clip(np.nan_to_num(dispersion, nan=1.0), 1.0, _MAX_DISPERSION)

    # Everything above covers the history the reference needs; the tests run on the scored buckets only.
    window = (slice(None), slice(start, None))
    rate, dispersion = rate[window], dispersion[window]
    z = np.zeros(rate.shape)
    rate_bound = np.maximum(rate * (1.0 + preset.min_relative_change), rate + preset.min_scale)
    csum_e, csum_n = _cumsum0(e), _cumsum0(n)
    for pool in pools:
        pooled_e = _window_sum(csum_e, pool, start)
        pooled_n = _window_sum(csum_n, pool, start)
        with np.errstate(invalid="ignore", divide="ignore"):
            # The excess must also matter in absolute terms: double the usual rate and min_scale more.
            pool_material = pooled_e >= pooled_n * rate_bound
        z_pool = binomial_upper_z(pooled_e / dispersion, pooled_n / dispersion, rate, where=pool_material)
        np.maximum(z, z_pool, out=z)
    e, n = e[window], n[window]
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.where(n > 0, e / n, np.nan)
    severity = z / preset.count_z_threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(rate * (1.0 - rate) * dispersion / np.where(n > 0, n, np.nan))
    scores = PointScores(
        method="binomial_rate",
        observed=observed,
        severity=clean_severity(severity),
        center=rate,
        half_width=preset.count_z_threshold * sd,
        floor=0.0,
        ceiling=1.0,
    )
    return scores


def _slice_scores(scores: PointScores, start: int) -> PointScores:
    """The same scores for buckets ``start`` to the end."""
    if start == 0:
        return scores
    window = (slice(None), slice(start, None))
    return PointScores(
        method=scores.method,
        observed=scores.observed[window],
        severity=scores.severity[window],
        center=scores.center[window],
        half_width=scores.half_width[window],
        log_scale=scores.log_scale,
        floor=scores.floor,
        ceiling=scores.ceiling,
    )


def volume_baseline(
    counts: FloatArray, periods_per_day: int | None, *, start: int = 0
) -> tuple[FloatArray, FloatArray, Baseline]:
    """Expected count and overdispersion from a seasonal baseline on sqrt(counts), for buckets ``start`` on.

    The square root stabilises Poisson variance (about 1/4 at any rate), so the baseline's noise scale
    translates straight into an overdispersion factor: 4 * scale**2.
    """
    root = np.sqrt(np.clip(counts, 0.0, None))
    base = seasonal_baseline(root, periods_per_day=periods_per_day, min_scale=0.5, start=start)
    expected = np.clip(base.expected, 0.0, None) ** 2
    # The baseline's scale also holds slow wander (a busy day); one bucket's own noise is better seen in
    # first differences, where slow components cancel: Var(diff sqrt(c)) ~ 2 * dispersion / 4.
    point = 2.0 * _trailing_median_abs_diff(root, start=start) ** 2 * MAD_TO_SIGMA**2
    dispersion = np.clip(
        np.fmin(4.0 * base.scale**2, np.where(np.isfinite(point), point, np.inf)), 1.0, _MAX_DISPERSION
    )
    return expected, dispersion, base


def _trailing_median_abs_diff(root: FloatArray, block: int = 240, *, start: int = 0) -> FloatArray:
    """Median |first difference| over the previous ``block`` buckets (block-wise, strictly past).

    Returns buckets ``start`` to the end; only the blocks they need are computed.
    """
    aligned = max(0, (start // block - 1) * block)
    if aligned:
        jumps = np.abs(np.diff(root[:, aligned - 1 :], axis=1))
        return _median_abs_diff_blocks(jumps, block)[:, start - aligned :]
    jumps = np.abs(np.diff(root, axis=1, prepend=np.nan))
    return _median_abs_diff_blocks(jumps, block)[:, start:]


def _median_abs_diff_blocks(jumps: FloatArray, block: int) -> FloatArray:
    n_series, n_time = jumps.shape
    n_blocks = -(-n_time // block)
    padded = np.full((n_series, n_blocks * block), np.nan)
    padded[:, :n_time] = jumps
    per_block = nanmedian_small_axis(padded.reshape(n_series, n_blocks, block), axis=2)
    previous = np.concatenate([np.full((n_series, 1), np.nan), per_block[:, :-1]], axis=1)
    return np.repeat(previous, block, axis=1)[:, :n_time]


def volume_scores(
    counts: FloatArray,
    preset: MetricPreset,
    periods_per_day: int | None,
    *,
    pools: tuple[int, ...] = POOLS,
    start: int = 0,
) -> PointScores:
    """Poisson test of call volume against its seasonal expectation: spikes and drops, per bucket and pooled.

    NaN means unknown (skipped); callers turn buckets known to be empty into zeros first. Buckets from
    ``start`` on are scored (the returned arrays have that width).
    """
    c_all = np.asarray(counts, dtype=np.float64)
    start = min(max(start, 0), c_all.shape[1])
    # Pooled windows reach back max(pools) buckets before the first scored one.
    inner = max(0, start - max(pools, default=1))
    c = c_all[:, inner:]
    c = np.where(c < 0, np.nan, c)
    expected, dispersion, _ = volume_baseline(np.where(c_all < 0, np.nan, c_all), periods_per_day, start=inner)
    known = np.isfinite(c) & np.isfinite(expected)
    c0 = np.where(known, c, 0.0)
    lam0 = np.where(known, expected, 0.0)
    # Each bucket: Var = dispersion * mean = mean + (dispersion - 1) * mean, i.e. a negative binomial
    # whose extra (gamma) variance is (dispersion - 1) * mean; pooled windows add their buckets' extra
    # variance and the slow wander, and are matched to one negative binomial by their first two moments.
    extra0 = np.where(known, (dispersion - 1.0) * expected, 0.0)
    z = np.zeros(c0.shape)
    for pool in pools:
        pooled_c = _trailing_sum(c0, pool, include_current=True) if pool > 1 else c0
        pooled_lam = _trailing_sum(lam0, pool, include_current=True) if pool > 1 else lam0
        pooled_extra = _trailing_sum(extra0, pool, include_current=True) if pool > 1 else extra0
        with np.errstate(invalid="ignore", divide="ignore"):
            inv_shape = np.where(pooled_lam > 0, pooled_extra / pooled_lam**2, 0.0)
        if pool > 1:
            inv_shape = inv_shape + VOLUME_WANDER**2
        with np.errstate(invalid="ignore", divide="ignore"):
            material = np.abs(pooled_c - pooled_lam) >= preset.min_relative_change * pooled_lam
        up, down = negbin_z(pooled_c, pooled_lam, inv_shape, where=material)
        if preset.direction == "up":
            down = np.zeros_like(down)
        elif preset.direction == "down":
            up = np.zeros_like(up)
        z = np.maximum(z, np.where(material, np.maximum(up, down), 0.0))
    severity = np.where(known, z / preset.count_z_threshold, 0.0)
    sd = np.sqrt(expected * dispersion)
    scores = PointScores(
        method="negbin_volume",
        observed=c,
        severity=clean_severity(severity),
        center=expected,
        half_width=preset.count_z_threshold * sd,
        floor=0.0,
    )
    return _slice_scores(scores, start - inner)
