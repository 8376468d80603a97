"""Joint anomalies across a series' metrics with an IsolationForest.

Some incidents are only visible together: latency a little up while output tokens and cost per call
are a little down (a model started truncating), none of them enough for its own detector. The forest
is trained on the baseline window of the joint vector (latency p95, error rate, cost per call, tokens
per call, volume, ...) after each feature is log-scaled and robust-standardised per series; the same
standardisation lets one forest serve a whole batch of series, which is what keeps a sweep over
thousands of series affordable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

from anomaly.detectors.baseline import MAD_TO_SIGMA, nanmedian_small_axis
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


# Per-series centre and spread are robust statistics: every 8th training bucket gives them as well as all
# of them do, at an eighth of the cost (the median over a week of minutes was most of a fit).
_STATS_STRIDE = 8


@dataclass(frozen=True, slots=True)
class Standardizer:
    """Per-series, per-feature robust centre and scale, shapes (S, 1, F)."""

    center: FloatArray
    scale: FloatArray
    log_mask: npt.NDArray[np.bool_]

    def apply(self, features: FloatArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        x = _prepare(features, self.log_mask)
        with np.errstate(all="ignore"):
            z = (x - self.center) / self.scale
        known = np.asarray(np.isfinite(z).any(axis=-1), dtype=np.bool_)
        return np.clip(np.nan_to_num(z, nan=0.0), -_STANDARD_CLIP, _STANDARD_CLIP), known


def _prepare(features: FloatArray, log_mask: npt.NDArray[np.bool_]) -> FloatArray:
    x = np.array(features, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if log_mask.all():  # the usual case: in place, no fancy-indexed copies
            np.clip(x, 0.0, None, out=x)
            np.log1p(x, out=x)
        else:
            x[..., log_mask] = np.log1p(np.clip(x[..., log_mask], 0.0, None))
    np.copyto(x, np.nan, where=~np.isfinite(x))
    return x


def fit_standardizer(
    features: FloatArray, train_until: int, *, log_scale: Sequence[bool] | None = None
) -> Standardizer:
    log_mask = np.ones(features.shape[-1], dtype=bool) if log_scale is None else np.asarray(log_scale, dtype=bool)
    train = _prepare(features[:, :train_until:_STATS_STRIDE, :], log_mask)
    # (S, F, rows): the median then runs along a contiguous axis.
    by_feature = np.ascontiguousarray(train.transpose(0, 2, 1))
    center = nanmedian_small_axis(by_feature, axis=2)[:, None, :]
    spread = MAD_TO_SIGMA * nanmedian_small_axis(np.abs(by_feature - center.transpose(0, 2, 1)), axis=2)[:, None, :]
    # A feature that never moved in training (e.g. zero errors) gets a scale from its level so a change
    # still registers without dividing by zero.
    floor = np.maximum(0.05 * np.abs(center), 1e-3)
    scale = np.fmax(np.nan_to_num(spread, nan=0.0), np.nan_to_num(floor, nan=1e-3))
    return Standardizer(center=center, scale=scale, log_mask=log_mask)


def standardize(
    features: FloatArray, train_until: int, *, log_scale: Sequence[bool] | None = None
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Per-series, per-feature robust z against the training window; NaN-free plus a row-known mask."""
    arr = np.asarray(features, dtype=np.float64)
    return fit_standardizer(arr, train_until, log_scale=log_scale).apply(arr)


@dataclass(frozen=True, slots=True)
class JointModel:
    """A fitted forest with the standardisation and score scale it was trained with.

    Fitting is the expensive part of the joint detector, and a week's baseline barely moves in an hour:
    a periodic job fits once an hour (:func:`fit_joint_model`), caches this, and every minute only scores
    the newest buckets with it (``joint_scores(..., model=...)``). The standardisation is per series,
    so the model belongs to the batch's series in their order; refit when the series set changes.
    """

    forest: IsolationForest | None
    standardizer: Standardizer
    anomaly_center: float
    anomaly_quantile: float
    features: tuple[str, ...]

    @property
    def n_series(self) -> int:
        return int(self.standardizer.center.shape[0])


def _as_features(features: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None, :, :]
    if arr.ndim != 3:
        raise ValueError("features must be (T, F) or (S, T, F)")
    return arr


def _names(feature_names: Sequence[str], n_features: int) -> tuple[str, ...]:
    if len(feature_names) >= n_features:
        return tuple(feature_names)[:n_features]
    return tuple(f"f{i}" for i in range(n_features))


def fit_joint_model(
    features: npt.ArrayLike,
    *,
    train_until: int,
    feature_names: Sequence[str] = JOINT_FEATURES,
    log_scale: Sequence[bool] | None = None,
    n_estimators: int = 100,
    max_train_rows: int = 50_000,
    random_state: int = 0,
) -> JointModel:
    """Fit the forest on the first ``train_until`` buckets of (T, F) or (S, T, F) features.

    Too little known training data gives a model without a forest, which scores everything 0.
    """
    arr = _as_features(features)
    n_series, n_time, n_features = arr.shape
    names = _names(feature_names, n_features)
    train_until = max(0, min(train_until, n_time))
    standardizer = fit_standardizer(arr, train_until, log_scale=log_scale)
    empty = JointModel(None, standardizer, 0.0, 1.0, names)
    if train_until == 0:
        return empty
    rng = np.random.default_rng(random_state)
    n_rows = n_series * train_until
    # Standardise only the rows the forest will see: a random sample of (series, bucket) pairs, drawn a
    # little larger than needed so unknown (all-NaN) rows can be dropped.
    if n_rows > max_train_rows:
        picked = np.sort(rng.choice(n_rows, min(n_rows, 2 * max_train_rows), replace=False))
        series_idx, time_idx = np.divmod(picked, train_until)
        sample = arr[series_idx, time_idx, :]
        z, known = Standardizer(
            standardizer.center[series_idx, 0, :][:, None, :],
            standardizer.scale[series_idx, 0, :][:, None, :],
            standardizer.log_mask,
        ).apply(sample[:, None, :])
        train_rows = z[:, 0, :][known[:, 0]][:max_train_rows]
    else:
        z, known = standardizer.apply(arr[:, :train_until, :])
        train_rows = z[known]
    if train_rows.shape[0] < _MIN_TRAIN_ROWS:
        return empty
    forest = IsolationForest(
        n_estimators=n_estimators, max_samples=min(256, train_rows.shape[0]), random_state=random_state
    )
    forest.fit(train_rows)
    train_anomaly = -forest.score_samples(train_rows)
    return JointModel(
        forest,
        standardizer,
        float(np.median(train_anomaly)),
        float(np.quantile(train_anomaly, THRESHOLD_QUANTILE)),
        names,
    )


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
    model: JointModel | None = None,
) -> JointScores:
    """IsolationForest severity per bucket for (T, F) or (S, T, F) features.

    ``train_until`` buckets from the start are the baseline; buckets from ``score_from`` on are scored
    (a periodic job scores only the newest ones). Too little training data yields all-zero severity.
    With ``model`` (from :func:`fit_joint_model`, e.g. cached for the hour) nothing is fitted and
    ``train_until`` is ignored; ``standardized`` is then filled only from ``score_from`` on.
    """
    arr = _as_features(features)
    n_series, n_time, n_features = arr.shape
    if model is None:
        model = fit_joint_model(
            arr,
            train_until=train_until,
            feature_names=feature_names,
            log_scale=log_scale,
            n_estimators=n_estimators,
            max_train_rows=max_train_rows,
            random_state=random_state,
        )
        z, known = model.standardizer.apply(arr)
    else:
        if model.n_series != n_series or model.standardizer.center.shape[-1] != n_features:
            raise ValueError("the joint model was fitted on a different batch of series or features")
        z = np.zeros(arr.shape)
        known = np.zeros((n_series, n_time), dtype=bool)
        z[:, score_from:, :], known[:, score_from:] = model.standardizer.apply(arr[:, score_from:, :])
    score_from = max(0, min(score_from, n_time))
    anomaly = np.full((n_series, n_time), np.nan)
    # Zero pages are only touched where written: a full-width severity costs only the scored window.
    severity = np.zeros((n_series, n_time))
    if model.forest is None or n_time == 0:
        nan = np.broadcast_to(np.float64(np.nan), (n_series, n_time))
        return JointScores(PointScores("isolation_forest", anomaly, severity, nan, nan), z, model.features)
    center = model.anomaly_center
    limit = center + max(model.anomaly_quantile - center, 1e-6) * threshold_scale(sensitivity)

    window = z[:, score_from:, :].reshape(-1, n_features)
    window_known = known[:, score_from:].reshape(-1)
    window_scores = np.full(window.shape[0], np.nan)
    if window_known.any():
        window_scores[window_known] = -model.forest.score_samples(window[window_known])
    anomaly[:, score_from:] = window_scores.reshape(n_series, -1)
    severity[:, score_from:] = clean_severity((anomaly[:, score_from:] - center) / (limit - center))
    scores = PointScores(
        method="isolation_forest",
        observed=anomaly,
        severity=severity,
        # One centre and limit for the whole batch: read-only broadcast views, not 10M-point copies.
        center=np.broadcast_to(np.float64(center), (n_series, n_time)),
        half_width=np.broadcast_to(np.float64(limit - center), (n_series, n_time)),
        floor=0.0,
    )
    return JointScores(scores, z, model.features)
