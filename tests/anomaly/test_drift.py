"""Drift tests flag shifted distributions and mixes, never identical ones; the scanner fires once per shift."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly.drift import canary_compare, compare_categorical, compare_numeric, numeric_psi, scan_drift


def test_shifted_token_counts_drift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.poisson(300, 2000)
    current = rng.poisson(360, 2000)

    result = compare_numeric(reference, current, feature="output_tokens")

    assert result.drifted
    assert result.test == "ks" and result.p_value < 1e-6 and result.effect_size > 0.25
    assert result.wasserstein == pytest.approx(60, rel=0.1)


def test_same_distribution_does_not_drift_even_with_large_samples() -> None:
    rng = np.random.default_rng(1)

    result = compare_numeric(rng.lognormal(6, 0.4, 50_000), rng.lognormal(6, 0.4, 50_000))

    assert not result.drifted and result.effect_size < 0.01


def test_tiny_but_significant_shift_is_not_material() -> None:
    rng = np.random.default_rng(2)

    result = compare_numeric(rng.normal(100, 10, 200_000), rng.normal(100.5, 10, 200_000))

    assert result.p_value < 0.01 and not result.drifted


def test_finish_reason_mix_drift() -> None:
    reference = ["stop"] * 950 + ["length"] * 50
    current = ["stop"] * 800 + ["length"] * 180 + ["content_filter"] * 20

    result = compare_categorical(reference, current, feature="finish_reason")

    assert result.drifted and result.test == "chi2" and result.p_value < 1e-10


@pytest.mark.parametrize(
    ("reference", "current"),
    [([], []), ([1.0] * 5, [2.0] * 5), ([7.0] * 500, [7.0] * 500), ([np.nan] * 100, [np.nan] * 100)],
)
def test_degenerate_numeric_input_is_not_drift(reference: list[float], current: list[float]) -> None:
    assert not compare_numeric(reference, current).drifted


def test_single_category_is_not_drift() -> None:
    assert not compare_categorical(["stop"] * 100, ["stop"] * 100).drifted


def test_canary_reports_every_shared_feature() -> None:
    rng = np.random.default_rng(3)
    previous = {
        "output_tokens": rng.poisson(300, 1500),
        "latency_ms": rng.lognormal(7, 0.3, 1500),
        "finish_reason": rng.choice(["stop", "length"], 1500, p=[0.95, 0.05]),
        "only_in_previous": np.ones(1500),
    }
    candidate = {
        "output_tokens": rng.poisson(300, 1500),
        "latency_ms": rng.lognormal(7.3, 0.3, 1500),
        "finish_reason": rng.choice(["stop", "length"], 1500, p=[0.7, 0.3]),
    }

    results = {r.feature: r for r in canary_compare(previous, candidate)}

    assert set(results) == {"output_tokens", "latency_ms", "finish_reason"}
    assert not results["output_tokens"].drifted
    assert results["latency_ms"].drifted and results["latency_ms"].kind == "numeric"
    assert results["finish_reason"].drifted and results["finish_reason"].kind == "categorical"


def test_scanner_fires_once_per_shift() -> None:
    rng = np.random.default_rng(4)
    tokens = np.concatenate([rng.normal(300, 30, 1500), rng.normal(380, 30, 1500), rng.normal(300, 30, 1500)])

    alarms = scan_drift({"tokens": tokens}, window=200)

    assert len(alarms) == 2
    assert 1500 <= alarms[0] < 1700
    assert 3000 <= alarms[1] < 3300


def test_scanner_on_categorical_and_stationary_data() -> None:
    rng = np.random.default_rng(5)
    mix = np.concatenate([rng.choice(["a", "b"], 1000, p=[0.9, 0.1]), rng.choice(["a", "b"], 1000, p=[0.5, 0.5])])
    steady = rng.normal(0, 1, 2000)

    assert scan_drift({"mix": mix}, window=150)[:1] and 1000 <= scan_drift({"mix": mix}, window=150)[0] < 1200
    assert scan_drift({"steady": steady, "mix": np.full(2000, "a")}, window=150) == []
    assert scan_drift({"tiny": [1.0, 2.0]}, window=150) == []


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=0, max_size=300),
)
def test_identical_samples_never_drift(values: list[float]) -> None:
    assert not compare_numeric(values, values).drifted
    assert numeric_psi(values, values) == pytest.approx(0.0, abs=1e-9)
