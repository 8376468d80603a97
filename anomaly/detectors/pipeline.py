"""The per-metric detector set, run over a batch of series sharing one time grid.

This is the function a periodic job (one ClickHouse query per metric family, pivoted to series x
minutes) and the backtest both call, so what is previewed is what pages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


def _value_methods(
    values: FloatArray, counts: FloatArray | None, preset: MetricPreset, periods_per_day: int | None
) -> list[PointScores]:
    if counts is not None:
        # Percentiles over a handful of calls are mostly noise: treat those buckets as unknown, which
        # also keeps them out of the baseline.
        values = np.where(np.nan_to_num(counts, nan=0.0) >= preset.min_calls, values, np.nan)
    x = transform(values, preset.transform)
    # On a linear scale a perfectly flat series would otherwise make a 0.1% wobble infinitely surprising.
    relative_floor = 0.01 if preset.transform == "identity" else 0.0
    baseline = seasonal_baseline(
        x, periods_per_day=periods_per_day, min_scale=preset.min_scale, relative_floor=relative_floor
    )
    deviation, z = deviation_scores(values, baseline, preset)
    return [deviation, cusum_scores(values, x, z, baseline, preset)]


def _methods(
    values: FloatArray,
    counts: FloatArray | None,
    events: FloatArray | None,
    preset: MetricPreset,
    periods_per_day: int | None,
) -> list[PointScores]:
    if preset.count_model == "poisson":
        return [volume_scores(values, preset, periods_per_day)]
    if preset.count_model == "binomial" and counts is not None:
        numerator = events if events is not None else np.rint(np.nan_to_num(values, nan=0.0) * counts)
        return [rate_scores(numerator, counts, preset)]
    return _value_methods(values, counts, preset, periods_per_day)


def _evidence(
    methods: list[PointScores], detection_series: int, episode: Episode, timestamps: npt.NDArray[np.int64], metric: str
) -> Evidence:
    at = episode.fired
    best = max(methods, key=lambda m: float(m.severity[detection_series, at]))
    end_index = episode.fired if episode.end is None else episode.end
    return Evidence(
        method=best.method,
        metric=metric,
        observed=float(best.observed[detection_series, at]),
        expected=float(best.expected((detection_series, at))),
        lower=float(best.lower((detection_series, at))),
        upper=float(best.upper((detection_series, at))),
        score=float(best.severity[detection_series, at]),
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
    """Infinities are bad rows (a division gone wrong upstream), not observations."""
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
) -> DetectionResult:
    """Run the metric's detector set over series (T,) or (S, T) on a shared regular grid.

    ``values`` is the metric itself (for ``volume``: the call count). ``counts`` is calls per bucket:
    the trials of a rate metric, or a low-volume guard for value metrics. ``events`` is the numerator
    of a rate (errors); without it, ``values * counts`` is used. Buckets with no data are NaN.
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
    try:
        # Absurd magnitudes (1e308) overflow to inf and are then scored as unknown; no need to warn.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            methods = _methods(batch, count_batch, event_batch, preset, grid.periods_per_day)
    except (ValueError, FloatingPointError, IndexError):
        methods = _per_series(batch, count_batch, event_batch, preset, grid.periods_per_day)
    severity = np.max(np.stack([m.severity for m in methods]), axis=0)
    episodes = decide_alerts(severity, policy)
    detections = tuple(Detection(e.series, e, _evidence(methods, e.series, e, epoch, preset.kind)) for e in episodes)
    return DetectionResult(preset.kind, epoch, severity, tuple(methods), detections)


def _per_series(
    batch: FloatArray,
    counts: FloatArray | None,
    events: FloatArray | None,
    preset: MetricPreset,
    periods_per_day: int | None,
) -> list[PointScores]:
    """Retry one series at a time so a single bad series cannot silence the rest of the batch."""
    rows: list[list[PointScores]] = []
    for i in range(batch.shape[0]):
        row_counts = None if counts is None else counts[i : i + 1]
        row_events = None if events is None else events[i : i + 1]
        try:
            rows.append(_methods(batch[i : i + 1], row_counts, row_events, preset, periods_per_day))
        except (ValueError, FloatingPointError, IndexError):
            logger.exception("detector %s failed on series %d; skipping it", preset.kind, i)
            rows.append([])
    width = max(len(r) for r in rows)
    template = next((r for r in rows if len(r) == width), [])
    merged: list[PointScores] = []
    for j in range(width):
        parts = [r[j] if len(r) == width else None for r in rows]

        def stack(field: str, fill: float, parts: list[PointScores | None] = parts) -> FloatArray:
            return np.vstack(
                [getattr(p, field) if p is not None else np.full((1, batch.shape[1]), fill) for p in parts]
            )

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
        nan = np.full(batch.shape, np.nan)
        merged = [PointScores("none", batch, np.zeros(batch.shape), nan, nan)]
    return merged
