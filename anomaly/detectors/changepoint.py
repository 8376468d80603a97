"""Level-shift detection: a CUSUM over robust-standardised residuals.

Point-wise z-scores miss a slow creep (each minute is only a little off) and a small persistent step.
CUSUM accumulates the excess over a drift allowance and fires once the evidence adds up, so both
are caught. Residuals are clipped first: one wild outlier must not be worth a level shift.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from anomaly.detectors.baseline import Baseline, directional
from anomaly.detectors.evidence import FloatArray, PointScores, clean_severity
from anomaly.detectors.presets import Direction, MetricPreset

RESIDUAL_CLIP = 4.0
# Capping the statistic bounds how long it takes to fall back once the metric recovers.
CAP_FACTOR = 1.5
# Span (buckets) of the moving average that sizes a detected shift for the materiality gate.
SHIFT_SPAN = 30


def cusum(z: FloatArray, *, drift: float, threshold: float, direction: Direction) -> FloatArray:
    """Severity (statistic / threshold) of a one- or two-sided CUSUM along time, for each series.

    Unknown residuals (gaps) contribute nothing, so the statistic decays through a gap instead of
    holding an alert open on no data. Loops over time only; each step is vectorised over series.
    """
    n_series, n_time = z.shape
    if n_time == 0:
        return np.zeros_like(z)
    residuals = np.clip(np.nan_to_num(z, nan=0.0), -RESIDUAL_CLIP, RESIDUAL_CLIP)
    columns = np.ascontiguousarray(residuals.T)
    cap = threshold * CAP_FACTOR
    up = np.zeros(n_series)
    down = np.zeros(n_series)
    out = np.empty((n_time, n_series))
    track_up = direction in ("up", "both")
    track_down = direction in ("down", "both")
    for t in range(n_time):
        r = columns[t]
        if track_up:
            np.add(up, r - drift, out=up)
            np.clip(up, 0.0, cap, out=up)
        if track_down:
            np.subtract(down, r + drift, out=down)
            np.clip(down, 0.0, cap, out=down)
        np.maximum(up, down, out=out[t])
    return out.T / threshold


def shift_size(x: FloatArray, expected: FloatArray, span: int = SHIFT_SPAN) -> FloatArray:
    """Exponentially weighted mean of the residual in transformed units (gaps count as no residual)."""
    alpha = 2.0 / (span + 1.0)
    residual = np.nan_to_num(x - expected, nan=0.0)
    return np.asarray(lfilter([alpha], [1.0, alpha - 1.0], residual, axis=-1), dtype=np.float64)


def cusum_scores(
    values: FloatArray, x: FloatArray, z: FloatArray, baseline: Baseline, preset: MetricPreset
) -> PointScores:
    """CUSUM severity, gated so a statistically clear but immaterial shift (a 2% busier day) stays quiet.

    ``x`` is the transformed series and ``z`` its robust z against ``baseline``. The band is the
    smallest shift that feeds the statistic.
    """
    severity = clean_severity(
        cusum(z, drift=preset.cusum_drift, threshold=preset.cusum_threshold, direction=preset.direction)
    )
    if preset.min_relative_change > 0:
        shift = directional(shift_size(x, np.nan_to_num(baseline.expected, nan=0.0)), preset.direction)
        candidates = severity >= 0.5
        if preset.transform == "log":
            relative = np.expm1(np.maximum(shift[candidates], 0.0))
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                relative = np.maximum(shift[candidates], 0.0) / np.abs(baseline.expected[candidates])
        severity[candidates] = np.fmin(
            severity[candidates], np.nan_to_num(relative, nan=0.0) / preset.min_relative_change
        )
    return PointScores(
        method="cusum",
        observed=values,
        severity=severity,
        center=baseline.expected,
        half_width=preset.cusum_drift * baseline.scale,
        log_scale=preset.transform == "log",
    )
