"""The per-metric detector set, run over a batch of series sharing one time grid.

This is the function a periodic job (one ClickHouse query per metric family, pivoted to series x
minutes) and the backtest both call, so what is previewed is what pages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from anomaly.detectors.alerts import AlertPolicy, Episode, decide_alerts
from anomaly.detectors.baseline import deviation_scores, seasonal_baseline, transform
from anomaly.detectors.changepoint import cusum_scores
from anomaly.detectors.counts import rate_scores, volume_scores
from anomaly.detectors.evidence import Evidence, FloatArray, PointScores, epoch_to_datetime
from anomaly.detectors.presets import MetricKind, MetricPreset, Sensitivity, get_preset
from anomaly.series import RegularGrid, as_batch, infer_step, to_epoch_seconds

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Detection:
    """An alert decision with the evidence to store and show next to it."""

    series: int
    episode: Episode
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """Everything computed for a batch; arrays are (series, time) on ``timestamps``."""

    metric: MetricKind
    timestamps: npt.NDArray[np.int64]
    severity: FloatArray
    methods: tuple[PointScores, ...]
    detections: tuple[Detection, ...]

    @property
    def episodes(self) -> list[Episode]:
        return [d.episode for d in self.detections]


# With ``score_from``, this many buckets before it are scored too: the CUSUM and the pooled windows need
# a run-up to carry their state into the scored window, and the evidence band needs some context.
WARM_UP_BUCKETS = 360


def _value_methods(
    values: FloatArray, counts: FloatArray | None, preset: MetricPreset, periods_per_day: int | None, start: int
) -> list[PointScores]:
    if counts is not None:
        # Percentiles over a handful of calls are mostly noise: treat those buckets as unknown, which
        # also keeps them out of the baseline.
        values = np.where(np.nan_to_num(counts, nan=0.0) >= preset.min_calls, values, np.nan)
    x = transform(values, preset.transform)
    # On a linear scale a perfectly flat series would otherwise make a 0.1% wobble infinitely surprising.
    relative_floor = 0.01 if preset.transform == "identity" else 0.0
    baseline = seasonal_baseline(
        x, periods_per_day=periods_per_day, min_scale=preset.min_scale, relative_floor=relative_floor, start=start
    )
    window_values = values[:, start:]
    deviation, z = deviation_scores(window_values, baseline, preset)
    return [deviation, cusum_scores(window_values, x[:, start:], z, baseline, preset)]


def _methods(
    values: FloatArray,
    counts: FloatArray | None,
    events: FloatArray | None,
    preset: MetricPreset,
    periods_per_day: int | None,
    start: int = 0,
) -> list[PointScores]:
    """Every method's scores for buckets ``start`` to the end (all of ``values`` is history)."""
    if preset.count_model == "poisson":
        return [volume_scores(values, preset, periods_per_day, start=start)]
    if preset.count_model == "binomial" and counts is not None:
        numerator = events if events is not None else np.rint(np.nan_to_num(values, nan=0.0) * counts)
        return [rate_scores(numerator, counts, preset, start=start)]
    return _value_methods(values, counts, preset, periods_per_day, start)


def _place(scores: PointScores, observed: FloatArray, start: int) -> PointScores:
    """Scores of the window ``start:`` on the full grid: full-width ``observed``, the rest offset."""
    if start == 0:
        return scores
    return replace(scores, observed=observed, offset=start)


def _shift(episode: Episode, offset: int) -> Episode:
    if offset == 0:
        return episode
    return Episode(
        episode.series,
        episode.start + offset,
        episode.fired + offset,
        None if episode.end is None else episode.end + offset,
        episode.peak + offset,
        episode.peak_severity,
    )


def _evidence(
    methods: list[PointScores], detection_series: int, episode: Episode, timestamps: npt.NDArray[np.int64], metric: str
) -> Evidence:
    at = episode.fired
    best = max(methods, key=lambda m: float(m.severity_at((detection_series, at))))
    end_index = episode.fired if episode.end is None else episode.end
    return Evidence(
        method=best.method,
        metric=metric,
        observed=float(best.observed[detection_series, at]),
        expected=float(best.expected((detection_series, at))),
        lower=float(best.lower((detection_series, at))),
        upper=float(best.upper((detection_series, at))),
        score=float(best.severity_at((detection_series, at))),
        window_start=epoch_to_datetime(int(timestamps[episode.start])),
        window_end=epoch_to_datetime(int(timestamps[end_index])),
        details={
            "fired_at": epoch_to_datetime(int(timestamps[at])).isoformat(),
            "peak_at": epoch_to_datetime(int(timestamps[episode.peak])).isoformat(),
            "peak_score": episode.peak_severity,
            "state": "open" if episode.is_open else "resolved",
        },
    )


def _finite_or_nan(values: FloatArray) -> FloatArray:
    """Infinities are bad rows (a division gone wrong upstream), not observations.

    Without any (the usual case) the input itself is returned: nothing downstream writes to it, and a
    copy of a week of minutes per input was a tenth of a sweep.
    """
    if not np.isinf(values).any():
        return values
    return np.where(np.isfinite(values), values, np.nan)


def detect_batch(
    values: npt.ArrayLike,
    timestamps: npt.ArrayLike,
    metric: MetricKind | str,
    *,
    counts: npt.ArrayLike | None = None,
    events: npt.ArrayLike | None = None,
    sensitivity: Sensitivity = "medium",
    policy: AlertPolicy | None = None,
    score_from: int | None = None,
) -> DetectionResult:
    """Run the metric's detector set over series (T,) or (S, T) on a shared regular grid.

    ``values`` is the metric itself (for ``volume``: the call count). ``counts`` is calls per bucket:
    the trials of a rate metric, or a low-volume guard for value metrics. ``events`` is the numerator
    of a rate (errors); without it, ``values * counts`` is used. Buckets with no data are NaN.

    ``score_from`` (a bucket index) is the incremental mode of a periodic job: baselines still come from
    the whole history passed in, but scores are computed only from ``score_from - WARM_UP_BUCKETS`` on
    (the warm-up carries CUSUM state and gives the evidence band context). Earlier buckets get severity
    0 and no band, so alerts can only start inside that window. Result arrays keep the full width and
    indices stay those of the input. ``None`` scores every bucket (backtests, previews).
    """
    preset = get_preset(metric, sensitivity)
    batch = as_batch(values)
    if preset.gaps_are_zero:
        # A rollup has no row for a minute without calls: for a count that missing row means zero.
        # Infinities stay unknown: they are broken rows, not empty minutes.
        batch = np.where(np.isnan(batch), 0.0, batch)
    batch = _finite_or_nan(batch)
    epoch = to_epoch_seconds(timestamps)
    if epoch.shape != (batch.shape[1],):
        raise ValueError("timestamps must have one entry per bucket of values")
    count_batch = None if counts is None else _finite_or_nan(as_batch(counts))
    event_batch = None if events is None else _finite_or_nan(as_batch(events))
    grid = RegularGrid(int(epoch[0]) if epoch.size else 0, infer_step(epoch), batch.shape[1])
    if batch.size == 0:
        return DetectionResult(preset.kind, epoch, np.zeros(batch.shape), (), ())
    n_time = batch.shape[1]
    start = 0 if score_from is None else min(max(int(score_from) - WARM_UP_BUCKETS, 0), n_time - 1)
    try:
        # Absurd magnitudes (1e308) overflow to inf and are then scored as unknown; no need to warn.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            window_methods = _methods(batch, count_batch, event_batch, preset, grid.periods_per_day, start)
    except (ValueError, FloatingPointError, IndexError):
        window_methods = _per_series(batch, count_batch, event_batch, preset, grid.periods_per_day, start)
    window_severity = window_methods[0].severity
    for m in window_methods[1:]:
        window_severity = np.maximum(window_severity, m.severity)
    episodes = [_shift(e, start) for e in decide_alerts(window_severity, _with_fast_path(policy, preset))]
    if start:
        observed = _full_observed(batch, count_batch, event_batch, preset)
        methods = [_place(m, observed, start) for m in window_methods]
        severity = np.zeros(batch.shape)
        severity[:, start:] = window_severity
    else:
        methods = window_methods
        severity = window_severity
    detections = tuple(Detection(e.series, e, _evidence(methods, e.series, e, epoch, preset.kind)) for e in episodes)
    return DetectionResult(preset.kind, epoch, severity, tuple(methods), detections)


def _full_observed(
    batch: FloatArray, counts: FloatArray | None, events: FloatArray | None, preset: MetricPreset
) -> FloatArray:
    """What the methods report as observed, for the whole grid (rates: events / calls; else the values)."""
    if preset.count_model == "binomial" and counts is not None and events is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, np.clip(events, 0.0, counts) / counts, np.nan)
    if preset.count_model == "poisson":
        return np.where(batch < 0, np.nan, batch)
    if preset.count_model == "none" and counts is not None:
        return np.where(counts >= preset.min_calls, batch, np.nan)
    return batch


def _with_fast_path(policy: AlertPolicy | None, preset: MetricPreset) -> AlertPolicy:
    """The caller's policy, with the metric's single-bucket fast path unless the caller set one."""
    policy = policy or AlertPolicy()
    if policy.fast_enter is None and preset.fast_enter is not None:
        return replace(policy, fast_enter=preset.fast_enter)
    return policy


def _per_series(
    batch: FloatArray,
    counts: FloatArray | None,
    events: FloatArray | None,
    preset: MetricPreset,
    periods_per_day: int | None,
    start: int = 0,
) -> list[PointScores]:
    """Retry one series at a time so a single bad series cannot silence the rest of the batch."""
    rows: list[list[PointScores]] = []
    width = batch.shape[1] - start
    for i in range(batch.shape[0]):
        row_counts = None if counts is None else counts[i : i + 1]
        row_events = None if events is None else events[i : i + 1]
        try:
            rows.append(_methods(batch[i : i + 1], row_counts, row_events, preset, periods_per_day, start))
        except (ValueError, FloatingPointError, IndexError):
            logger.exception("detector %s failed on series %d; skipping it", preset.kind, i)
            rows.append([])
    n_methods = max(len(r) for r in rows)
    template = next((r for r in rows if len(r) == n_methods), [])
    merged: list[PointScores] = []
    for j in range(n_methods):
        parts = [r[j] if len(r) == n_methods else None for r in rows]

        def stack(field: str, fill: float, parts: list[PointScores | None] = parts) -> FloatArray:
            return np.vstack([getattr(p, field) if p is not None else np.full((1, width), fill) for p in parts])

        merged.append(
            PointScores(
                method=template[j].method,
                observed=stack("observed", np.nan),
                severity=stack("severity", 0.0),
                center=stack("center", np.nan),
                half_width=stack("half_width", np.nan),
                log_scale=template[j].log_scale,
                floor=template[j].floor,
                ceiling=template[j].ceiling,
            )
        )
    if not merged:
        nan = np.full((batch.shape[0], width), np.nan)
        merged = [PointScores("none", batch[:, start:], np.zeros(nan.shape), nan, nan)]
    return merged
