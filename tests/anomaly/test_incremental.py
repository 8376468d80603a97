"""Incremental scoring (``score_from``), the single-bucket fast path and a cached joint model.

A per-minute sweep scores only the newest buckets against baselines built from the whole history it
loads; these tests pin that this gives the same answers as recomputing everything.
"""

from __future__ import annotations

import numpy as np
import pytest

from anomaly.detectors import AlertPolicy, PointScores, decide_alerts, detect_batch, fit_joint_model, joint_scores
from tests.anomaly.synthetic import DAY, seasonal_calls, seasonal_latency, timestamps

N_SERIES = 6
LAST_HOUR = 60


def _batch(metric: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    calls = seasonal_calls(11, days=5, n_series=N_SERIES, base=40.0)
    n = calls.shape[1]
    if metric == "latency":
        p95 = seasonal_latency(12, days=5, n_series=N_SERIES)
        p95[:2, n - 25 :] *= 2.5  # an incident in the newest half hour
        return p95, {"counts": calls}
    if metric == "volume":
        calls[:2, n - 25 :] = np.floor(calls[:2, n - 25 :] * 0.1)
        return calls, {}
    rng = np.random.default_rng(13)
    errors = rng.binomial(calls.astype(int), 0.01).astype(float)
    errors[:2, n - 25 :] = np.floor(calls[:2, n - 25 :] * 0.3)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(calls > 0, errors / calls, np.nan)
    return share, {"counts": calls, "events": errors}


@pytest.mark.parametrize("metric", ["latency", "volume", "error_rate"])
def test_scoring_the_newest_hour_matches_a_full_recompute(metric: str) -> None:
    values, extra = _batch(metric)
    n = values.shape[1]
    ts = timestamps(n)

    full = detect_batch(values, ts, metric, **extra)
    recent = detect_batch(values, ts, metric, score_from=n - LAST_HOUR, **extra)

    assert recent.severity.shape == full.severity.shape
    assert np.allclose(recent.severity[:, n - LAST_HOUR :], full.severity[:, n - LAST_HOUR :], rtol=1e-9, atol=1e-9)
    # Nothing is scored long before the window (only the warm-up), so nothing can alert there.
    assert (recent.severity[:, : n - LAST_HOUR - 400] == 0).all()
    open_full = {(d.series, d.episode.fired): d for d in full.detections if d.episode.is_open}
    open_recent = {(d.series, d.episode.fired): d for d in recent.detections if d.episode.is_open}
    assert set(open_recent) == set(open_full)
    assert {series for series, _ in open_recent} >= {0, 1}
    for key, detection in open_recent.items():
        mine, theirs = detection.evidence, open_full[key].evidence
        assert mine.method == theirs.method
        for field in ("observed", "expected", "lower", "upper", "score"):
            assert getattr(mine, field) == pytest.approx(getattr(theirs, field), rel=1e-9, nan_ok=True)
    # The band a UI draws over the last two hours agrees where it exists, and is NaN before the window.
    row = next(iter(open_recent))[0]
    span = (row, slice(n - 120, n))
    for a, b in zip(recent.methods, full.methods, strict=True):
        assert a.method == b.method
        np.testing.assert_allclose(a.expected(span)[-LAST_HOUR:], b.expected(span)[-LAST_HOUR:], rtol=1e-9)
        np.testing.assert_array_equal(a.observed[span], b.observed[span])


def test_score_from_outside_the_grid_is_clamped() -> None:
    values, extra = _batch("latency")
    n = values.shape[1]
    assert detect_batch(values, timestamps(n), "latency", score_from=10 * n, **extra).severity.shape == values.shape
    assert detect_batch(values, timestamps(n), "latency", score_from=-5, **extra).severity.shape == values.shape


def test_offset_scores_read_by_grid_index() -> None:
    window = np.array([[1.0, 2.0, 3.0]])
    scores = PointScores("m", np.arange(5.0)[None, :], window, window, np.zeros_like(window), offset=2)

    assert np.isnan(scores.expected((0, 0)))
    assert scores.expected((0, 3)) == 2.0
    assert scores.severity_at((0, -1)) == 3.0
    np.testing.assert_array_equal(scores.expected((0, slice(1, 4))), [np.nan, 1.0, 2.0])
    np.testing.assert_array_equal(scores.severity_at((0, slice(0, 5))), [0.0, 0.0, 1.0, 2.0, 3.0])


def test_fast_path_fires_on_one_very_strong_bucket_only() -> None:
    severity = np.zeros(40)
    severity[10] = 3.0  # far beyond the threshold: fire at once
    severity[25] = 1.5  # a single ordinary breach: still needs confirmation

    fast = decide_alerts(severity, AlertPolicy(fast_enter=2.0))
    slow = decide_alerts(severity, AlertPolicy())

    assert [(e.start, e.fired) for e in fast] == [(10, 10)]
    assert slow == []
    with pytest.raises(ValueError, match="fast_enter"):
        AlertPolicy(fast_enter=0.5)


def test_error_burst_on_a_busy_route_pages_in_the_first_minute() -> None:
    calls = seasonal_calls(21, days=4, n_series=1, base=80.0)
    errors = np.random.default_rng(22).binomial(calls.astype(int), 0.01).astype(float)
    onset = 3 * DAY + 300
    errors[0, onset : onset + 10] = np.floor(calls[0, onset : onset + 10] * 0.3)

    result = detect_batch(errors / calls, timestamps(calls.shape[1]), "error_rate", counts=calls, events=errors)

    assert [e.fired for e in result.episodes] == [onset]


def test_cached_joint_model_scores_like_a_fresh_fit() -> None:
    rng = np.random.default_rng(31)
    features = np.exp(rng.normal(0.0, 0.05, size=(3, 1500, 5))) * np.array([800.0, 0.01, 0.002, 400.0, 50.0])
    features[1, 1470:, 0] *= 3.0

    model = fit_joint_model(features, train_until=1400)
    cached = joint_scores(features, train_until=0, score_from=1440, model=model)
    fresh = joint_scores(features, train_until=1400, score_from=1440)

    np.testing.assert_allclose(cached.scores.severity, fresh.scores.severity)
    shifted = np.median(cached.scores.observed[1, 1470:])
    assert shifted > np.median(cached.scores.observed[[0, 2], 1470:]) + 0.05
    assert (cached.scores.severity[:, :1440] == 0).all()
    with pytest.raises(ValueError, match="different batch"):
        joint_scores(features[:2], train_until=0, model=model)
