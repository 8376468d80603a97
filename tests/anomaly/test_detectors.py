"""Each detector catches its incident type, stays quiet on clean seasonal noise, and carries evidence."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly.detectors import decide_alerts, detect_batch, get_preset
from anomaly.detectors.presets import threshold_scale
from tests.anomaly.synthetic import DAY, seasonal_calls, seasonal_latency, timestamps

INCIDENT_AT = 3 * DAY + 600  # day 4, 10:00


def fired(result: object, series: int = 0) -> list[int]:
    return [e.fired for e in result.episodes if e.series == series]  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_seasonal_latency_stays_quiet(seed: int) -> None:
    p95 = seasonal_latency(seed)
    calls = seasonal_calls(seed)

    result = detect_batch(p95, timestamps(p95.shape[1]), "latency", counts=calls)

    assert result.detections == ()


def test_latency_step_fires_once_within_three_minutes_with_evidence() -> None:
    p95 = seasonal_latency(4)
    p95[0, INCIDENT_AT : INCIDENT_AT + 60] *= 2.0

    result = detect_batch(p95, timestamps(p95.shape[1]), "latency")

    assert len(result.detections) == 1
    detection = result.detections[0]
    assert INCIDENT_AT <= detection.episode.fired <= INCIDENT_AT + 2
    evidence = detection.evidence
    assert evidence.method == "robust_baseline"
    assert evidence.metric == "latency"
    assert evidence.observed > evidence.upper > evidence.expected > evidence.lower > 0
    assert evidence.score >= 1.0
    assert evidence.window_start <= evidence.window_end
    assert evidence.as_dict()["window_start"].startswith("2025-01-04T10:0")


def test_slow_creep_is_caught_by_the_change_point_detector() -> None:
    p95 = seasonal_latency(5)
    ramp = np.linspace(0.0, np.log(1.5), 240)
    p95[0, INCIDENT_AT : INCIDENT_AT + 240] *= np.exp(ramp)

    result = detect_batch(p95, timestamps(p95.shape[1]), "latency")

    methods = {m.method: m for m in result.methods}
    cusum_breach = np.flatnonzero(methods["cusum"].severity[0] >= 1)
    assert cusum_breach.size and INCIDENT_AT < cusum_breach[0] < INCIDENT_AT + 240
    assert [INCIDENT_AT < f < INCIDENT_AT + 240 for f in fired(result)] == [True]


def test_cusum_accumulates_a_small_persistent_shift_no_single_point_shows() -> None:
    rng = np.random.default_rng(19)
    values = 100 + rng.normal(0, 1.0, size=(1, 4 * DAY))
    values[0, INCIDENT_AT:] += 1.5  # 1.5 sigma: the point detector alone would never alert on it

    result = detect_batch(values, timestamps(values.shape[1]), "generic")

    methods = {m.method: m for m in result.methods}
    assert decide_alerts(methods["robust_baseline"].severity) == []
    assert len(fired(result)) == 1 and result.detections[0].evidence.method == "cusum"
    assert INCIDENT_AT < result.detections[0].episode.fired < INCIDENT_AT + 60


def test_latency_drop_is_not_an_incident() -> None:
    p95 = seasonal_latency(6)
    p95[0, INCIDENT_AT : INCIDENT_AT + 60] *= 0.4

    assert detect_batch(p95, timestamps(p95.shape[1]), "latency").detections == ()


def error_series(seed: int, base_calls: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    calls = seasonal_calls(seed, base=base_calls)
    errors = rng.binomial(calls.astype(int), rate).astype(float)
    return calls, errors


def test_error_burst_is_caught_by_the_binomial_test() -> None:
    calls, errors = error_series(7, 50, 0.01)
    rng = np.random.default_rng(8)
    burst = slice(INCIDENT_AT, INCIDENT_AT + 15)
    errors[0, burst] = rng.binomial(calls[0, burst].astype(int), 0.2)
    rate = np.where(calls > 0, errors / np.maximum(calls, 1), np.nan)

    result = detect_batch(rate, timestamps(rate.shape[1]), "error_rate", counts=calls, events=errors)

    assert len(result.detections) == 1
    assert INCIDENT_AT <= result.detections[0].episode.fired <= INCIDENT_AT + 3
    assert result.detections[0].evidence.method == "binomial_rate"
    assert result.detections[0].evidence.observed > result.detections[0].evidence.upper


@pytest.mark.parametrize("seed", [9, 10, 11])
def test_sparse_error_series_does_not_page_on_zero_one_noise(seed: int) -> None:
    # About one call a minute: single failures are "100% error rate" minutes, which is just noise.
    calls, errors = error_series(seed, 1.0, 0.05)
    rate = np.where(calls > 0, errors / np.maximum(calls, 1), np.nan)

    result = detect_batch(rate, timestamps(rate.shape[1]), "error_rate", counts=calls, events=errors)

    assert result.detections == ()
    assert float(rate[0][np.isfinite(rate[0])].max()) == 1.0


@pytest.mark.parametrize("kept", [0.0, 0.3])
def test_volume_drop_is_caught(kept: float) -> None:
    calls = seasonal_calls(12, base=80)
    drop = slice(INCIDENT_AT, INCIDENT_AT + 30)
    calls[0, drop] = np.floor(calls[0, drop] * kept)

    result = detect_batch(calls, timestamps(calls.shape[1]), "volume")

    assert len(result.detections) == 1
    assert INCIDENT_AT <= result.detections[0].episode.fired <= INCIDENT_AT + 5
    evidence = result.detections[0].evidence
    assert evidence.method == "negbin_volume" and evidence.observed < evidence.lower


def test_volume_spike_is_caught_and_clean_volume_is_quiet() -> None:
    calls = seasonal_calls(13, base=80, n_series=2)
    calls[1, INCIDENT_AT : INCIDENT_AT + 10] *= 3

    result = detect_batch(calls, timestamps(calls.shape[1]), "volume")

    assert fired(result, 0) == []
    assert len(fired(result, 1)) == 1


def test_cost_per_call_jump_from_a_version_change_is_caught() -> None:
    rng = np.random.default_rng(14)
    cost = 0.01 * np.exp(rng.normal(0, 0.03, size=(1, 4 * DAY)))
    cost[0, INCIDENT_AT:] *= 1.4

    result = detect_batch(cost, timestamps(cost.shape[1]), "cost_per_call")

    assert len(result.detections) == 1
    assert result.detections[0].episode.is_open
    assert INCIDENT_AT <= result.detections[0].episode.fired <= INCIDENT_AT + 2


def test_output_length_drift_is_caught() -> None:
    rng = np.random.default_rng(15)
    tokens = 400 * np.exp(rng.normal(0, 0.05, size=(1, 4 * DAY)))
    tokens[0, INCIDENT_AT : INCIDENT_AT + 300] *= np.exp(np.linspace(0, np.log(1.5), 300))

    result = detect_batch(tokens, timestamps(tokens.shape[1]), "tokens")

    assert [INCIDENT_AT < f < INCIDENT_AT + 300 for f in fired(result)] == [True]


def test_batch_scores_match_single_series_scores() -> None:
    batch = seasonal_latency(16, n_series=3)
    batch[1, INCIDENT_AT : INCIDENT_AT + 30] *= 2.5
    stamps = timestamps(batch.shape[1])

    together = detect_batch(batch, stamps, "latency")
    alone = detect_batch(batch[1], stamps, "latency")

    assert np.allclose(together.severity[1], alone.severity[0])
    assert fired(together, 1) == fired(alone, 0)
    assert fired(together, 0) == fired(together, 2) == []


def test_sensitivity_orders_thresholds_and_alerts() -> None:
    assert threshold_scale("low") > threshold_scale("medium") == 1.0 > threshold_scale("high")
    assert threshold_scale(0.0) > threshold_scale("low") and threshold_scale(1.0) < threshold_scale("high")
    assert get_preset("latency", "high").z_threshold < get_preset("latency", "low").z_threshold
    p95 = seasonal_latency(17, n_series=20)
    p95[:, INCIDENT_AT : INCIDENT_AT + 30] *= np.linspace(1.05, 1.6, 20)[:, None]
    stamps = timestamps(p95.shape[1])

    counts = {s: len(detect_batch(p95, stamps, "latency", sensitivity=s).detections) for s in ("low", "medium", "high")}

    assert counts["low"] <= counts["medium"] <= counts["high"]
    assert counts["low"] < counts["high"]


@pytest.mark.parametrize("bad", ["extreme", -0.1, 1.5])
def test_invalid_sensitivity_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="sensitivity"):
        get_preset("latency", bad)  # type: ignore[arg-type]


def test_hourly_cadence_uses_seasonality_too() -> None:
    rng = np.random.default_rng(18)
    hours = 24 * 10
    t = np.arange(hours) / 24
    values = 100 * np.exp(0.3 * np.sin(2 * np.pi * t) + rng.normal(0, 0.03, hours))
    values[24 * 8 + 5 : 24 * 8 + 9] *= 1.8
    stamps = 1_735_689_600 + 3600 * np.arange(hours)

    result = detect_batch(values, stamps, "generic")

    # The first three days run on the cold-start baseline; from day four on the seasonal one applies.
    seasonal_alerts = [f for f in fired(result) if f >= 3 * 24]
    assert [24 * 8 + 5 <= f <= 24 * 8 + 7 for f in seasonal_alerts] == [True]


@pytest.mark.parametrize("days", [1, 2, 3, 4, 5, 6, 7])
def test_median_across_days_is_the_nan_aware_median_of_the_transposed_days(days: int) -> None:
    from anomaly.detectors.baseline import _nanmedian_across_days, nanmedian_small_axis

    rng = np.random.default_rng(days)
    reference = rng.normal(size=(5, days, 300))
    reference[rng.random(reference.shape) < 0.3] = np.nan
    reference[:, :, :10] = np.nan  # buckets with no reference day at all
    expected = nanmedian_small_axis(np.ascontiguousarray(reference.transpose(0, 2, 1)), axis=2)
    got = _nanmedian_across_days(reference)
    assert np.isnan(got[:, :10]).all()
    np.testing.assert_array_equal(got, expected)  # bit for bit: the sweep's results must not move


def test_detect_batch_leaves_its_input_alone_and_treats_infinities_as_unknown() -> None:
    values = seasonal_latency(3, days=4, n_series=2).reshape(2, -1)
    calls = np.full(values.shape, 50.0)
    values[1, -30] = np.inf
    before = values.copy()
    grid, score_from = timestamps(values.shape[1]), values.shape[1] - 60
    with_inf = detect_batch(values, grid, "latency", counts=calls, score_from=score_from)
    np.testing.assert_array_equal(values, before)
    cleaned = np.where(np.isinf(values), np.nan, values)
    with_nan = detect_batch(cleaned, grid, "latency", counts=calls, score_from=score_from)
    np.testing.assert_array_equal(with_inf.severity, with_nan.severity)
    assert with_inf.severity[1, -30] == 0.0
