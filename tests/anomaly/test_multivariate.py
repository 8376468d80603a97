"""The joint IsolationForest flags a combination no single metric would page for."""

from __future__ import annotations

import numpy as np

from anomaly.detectors import JOINT_FEATURES, decide_alerts, joint_scores


def joint_batch(seed: int, n_series: int = 4, n_time: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latency = 800 * np.exp(rng.normal(0, 0.05, (n_series, n_time)))
    error_rate = rng.binomial(50, 0.01, (n_series, n_time)) / 50
    cost = 0.01 * np.exp(rng.normal(0, 0.03, (n_series, n_time)))
    tokens = 400 * np.exp(rng.normal(0, 0.05, (n_series, n_time)))
    volume = rng.poisson(50, (n_series, n_time)).astype(float)
    return np.stack([latency, error_rate, cost, tokens, volume], axis=-1)


def test_joint_shift_is_flagged_and_clean_series_are_not() -> None:
    features = joint_batch(1)
    # Truncated answers: latency and tokens and cost all drop together, each by ~3 sigma only.
    features[2, 2500:2560, 0] *= np.exp(-0.15)
    features[2, 2500:2560, 2] *= np.exp(-0.09)
    features[2, 2500:2560, 3] *= np.exp(-0.15)

    result = joint_scores(features, train_until=2000)

    episodes = decide_alerts(result.scores.severity)
    assert [e.series for e in episodes] == [2]
    assert 2500 <= episodes[0].fired < 2510
    assert result.features == JOINT_FEATURES
    assert result.standardized.shape == features.shape


def test_scoring_only_the_newest_buckets_matches_full_scoring() -> None:
    features = joint_batch(2, n_series=2, n_time=1500)

    full = joint_scores(features, train_until=1200)
    tail = joint_scores(features, train_until=1200, score_from=1440)

    assert np.allclose(full.scores.severity[:, 1440:], tail.scores.severity[:, 1440:])
    assert (tail.scores.severity[:, :1440] == 0).all()


def test_single_series_input_and_missing_rows() -> None:
    features = joint_batch(3, n_series=1, n_time=800)[0]
    features[100:200] = np.nan

    result = joint_scores(features, train_until=600)

    assert result.scores.severity.shape == (1, 800)
    assert (result.scores.severity[0, 100:200] == 0).all()
