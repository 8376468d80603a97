"""Joint anomalies across a series' metrics with an IsolationForest.

Some incidents are only visible together: latency a little up while output tokens and cost per call
are a little down (a model started truncating), none of them enough for its own detector. The forest
is trained on the baseline window of the joint vector (latency p95, error rate, cost per call, tokens
per call, volume, ...) after each feature is log-scaled and robust-standardised per series; the same
standardisation lets one forest serve a whole batch of series, which is what keeps a sweep over
thousands of series affordable.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

from anomaly.detectors.baseline import MAD_TO_SIGMA
from anomaly.detectors.evidence import FloatArray, PointScores, clean_severity
from anomaly.detectors.presets import Sensitivity, threshold_scale

JOINT_FEATURES = ("latency_p95", "error_rate", "cost_per_call", "tokens_per_call", "volume")
# Training-score quantile mapped to severity 1 at medium sensitivity: about one breach per 3 days of
# minute buckets on clean data, before the alert policy's consecutive-breach rule.
THRESHOLD_QUANTILE = 0.9998
_MIN_TRAIN_ROWS = 32
_STANDARD_CLIP = 20.0


@dataclass(frozen=True, slots=True)
class JointScores:
    """``scores`` carries the forest's anomaly score as observed value; ``standardized`` is (S, T, F)."""

    scores: PointScores
    standardized: FloatArray
    features: tuple[str, ...]


def standardize(
    features: FloatArray, train_until: int, *, log_scale: Sequence[bool] | None = None
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Per-series, per-feature robust z against the training window; NaN-free plus a row-known mask."""
    x = np.array(features, dtype=np.float64)
    log_mask = np.ones(x.shape[-1], dtype=bool) if log_scale is None else np.asarray(log_scale, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        x[..., log_mask] = np.log1p(np.clip(x[..., log_mask], 0.0, None))
    x[~np.isfinite(x)] = np.nan
    train = x[:, :train_until, :]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN features are handled below
        center = np.nanmedian(train, axis=1, keepdims=True)
        spread = MAD_TO_SIGMA * np.nanmedian(np.abs(train - center), axis=1, keepdims=True)
        # A feature that never moved in training (e.g. zero errors) gets a scale from its level so a
        # change still registers without dividing by zero.
        floor = np.maximum(0.05 * np.abs(center), 1e-3)
        z = (x - center) / np.fmax(np.nan_to_num(spread, nan=0.0), np.nan_to_num(floor, nan=1e-3))
    known = np.isfinite(z).any(axis=-1)
    z = np.clip(np.nan_to_num(z, nan=0.0), -_STANDARD_CLIP, _STANDARD_CLIP)
    return z, known


def joint_scores(
    features: npt.ArrayLike,
    *,
    train_until: int,
    score_from: int = 0,
    sensitivity: Sensitivity = "medium",
    feature_names: Sequence[str] = JOINT_FEATURES,
    log_scale: Sequence[bool] | None = None,
    n_estimators: int = 100,
    max_train_rows: int = 50_000,
    random_state: int = 0,
) -> JointScores:
    """IsolationForest severity per bucket for (T, F) or (S, T, F) features.

    ``train_until`` buckets from the start are the baseline; buckets from ``score_from`` on are scored
    (a periodic job scores only the newest ones). Too little training data yields all-zero severity.
    """
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None, :, :]
    if arr.ndim != 3:
        raise ValueError("features must be (T, F) or (S, T, F)")
    n_series, n_time, n_features = arr.shape
    names = (
        tuple(feature_names)[:n_features]
        if len(feature_names) >= n_features
        else tuple(f"f{i}" for i in range(n_features))
    )
    z, known = standardize(arr, train_until, log_scale=log_scale)
    zeros = np.zeros((n_series, n_time))
    nan = np.full((n_series, n_time), np.nan)
    quiet = PointScores("isolation_forest", nan, zeros, nan, nan)
    train_rows = z[:, :train_until, :][known[:, :train_until]]
    if train_rows.shape[0] < _MIN_TRAIN_ROWS or n_time == 0:
        return JointScores(quiet, z, names)
    rng = np.random.default_rng(random_state)
    if train_rows.shape[0] > max_train_rows:
        train_rows = train_rows[rng.choice(train_rows.shape[0], max_train_rows, replace=False)]
    forest = IsolationForest(
        n_estimators=n_estimators, max_samples=min(256, train_rows.shape[0]), random_state=random_state
    )
    forest.fit(train_rows)
    train_anomaly = -forest.score_samples(train_rows)
    center = float(np.median(train_anomaly))
    limit = float(np.quantile(train_anomaly, THRESHOLD_QUANTILE))
    limit = center + max(limit - center, 1e-6) * threshold_scale(sensitivity)

    anomaly = np.full((n_series, n_time), np.nan)
    score_from = max(0, min(score_from, n_time))
    window = z[:, score_from:, :].reshape(-1, n_features)
    window_known = known[:, score_from:].reshape(-1)
    window_scores = np.full(window.shape[0], np.nan)
    if window_known.any():
        window_scores[window_known] = -forest.score_samples(window[window_known])
    anomaly[:, score_from:] = window_scores.reshape(n_series, -1)
    severity = clean_severity((anomaly - center) / (limit - center))
    scores = PointScores(
        method="isolation_forest",
        observed=anomaly,
        severity=severity,
        center=np.full((n_series, n_time), center),
        half_width=np.full((n_series, n_time), limit - center),
        floor=0.0,
    )
    return JointScores(scores, z, names)
