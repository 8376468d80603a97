"""Bad input never raises and never alerts: empty, single point, constant, NaN, zero counts, new routes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from anomaly.detectors import MetricKind, decide_alerts, detect_batch, joint_scores
from anomaly.series import safe_ratio
from tests.anomaly.synthetic import DAY, timestamps

METRICS = [kind.value for kind in MetricKind]


def _sprinkled() -> np.ndarray:
    """A steady series with +inf, -inf and negative values sprinkled in."""
    values = np.full(3 * DAY, 30.0)
    values[::97] = np.inf
    values[5::89] = -np.inf
    values[7::83] = -60.0
    return values


BAD_SERIES = {
    "empty": np.array([]),
    "single_point": np.array([42.0]),
    "two_points": np.array([1.0, 1000.0]),
    "constant": np.full(3 * DAY, 7.0),
    "constant_zero": np.zeros(3 * DAY),
    "all_nan": np.full(3 * DAY, np.nan),
    "nan_from_zero_division": safe_ratio(np.zeros(3 * DAY), np.zeros(3 * DAY)),
    "just_created_route": np.concatenate([np.full(3 * DAY - 5, np.nan), [120.0, 3000.0, 50.0, 9000.0, 1.0]]),
    "inf_and_negative": _sprinkled(),
}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("case", list(BAD_SERIES))
def test_bad_series_produce_no_alert_and_no_exception(metric: str, case: str) -> None:
    values = BAD_SERIES[case]

    result = detect_batch(values, timestamps(values.size), metric)

    assert result.detections == ()
    assert result.severity.shape == (1, values.size)
    assert np.isfinite(result.severity).all()


@pytest.mark.parametrize("metric", ["error_rate", "unpriced_share", "latency", "cost_per_call"])
def test_all_zero_counts_produce_no_alert(metric: str) -> None:
    zeros = np.zeros(3 * DAY)
    rate = safe_ratio(zeros, zeros)

    result = detect_batch(rate, timestamps(zeros.size), metric, counts=zeros, events=zeros)

    assert result.detections == ()


def test_more_errors_than_calls_is_treated_as_bad_data_not_a_crash() -> None:
    calls = np.full(2 * DAY, 10.0)
    errors = np.full(2 * DAY, 50.0)

    result = detect_batch(errors / calls, timestamps(calls.size), "error_rate", counts=calls, events=errors)

    assert np.isfinite(result.severity).all()


def test_mismatched_timestamps_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="one entry per bucket"):
        detect_batch(np.ones(10), timestamps(9), "generic")


def test_joint_scores_with_too_little_training_are_all_quiet() -> None:
    features = np.ones((1, 10, 5))

    scores = joint_scores(features, train_until=5)

    assert (scores.scores.severity == 0).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=arrays(
        np.float64,
        st.integers(min_value=0, max_value=400),
        elements=st.one_of(
            st.floats(allow_nan=True, allow_infinity=True, width=64),
            st.floats(min_value=0, max_value=1e6),
        ),
    ),
    metric=st.sampled_from(METRICS),
)
def test_any_float_series_yields_finite_non_negative_scores(values: np.ndarray, metric: str) -> None:
    result = detect_batch(values, timestamps(values.size), metric)

    assert result.severity.shape == (1, values.size)
    assert np.isfinite(result.severity).all() and (result.severity >= 0).all()
    assert all(0 <= d.episode.fired < values.size for d in result.detections)


@settings(max_examples=100, deadline=None)
@given(
    severity=arrays(
        np.float64, st.integers(min_value=0, max_value=300), elements=st.floats(allow_nan=True, allow_infinity=True)
    )
)
def test_alert_decisions_accept_any_severity(severity: np.ndarray) -> None:
    episodes = decide_alerts(severity)

    fired = [e.fired for e in episodes]
    assert fired == sorted(set(fired))
    for e in episodes:
        assert e.start <= e.fired and (e.end is None or e.end > e.fired)
