"""Small labelled series for detector tests: minute cadence, daily seasonality, seeded noise."""

from __future__ import annotations

import numpy as np

MINUTE = 60
DAY = 1440
START = 1_735_689_600  # 2025-01-01T00:00:00Z


def timestamps(n: int) -> np.ndarray:
    return START + MINUTE * np.arange(n)


def seasonal_latency(seed: int, days: int = 4, n_series: int = 1) -> np.ndarray:
    """p95 latency in ms: daily swing, a random level per day and log-normal noise."""
    rng = np.random.default_rng(seed)
    n = days * DAY
    t = np.arange(n) / DAY
    day_level = np.repeat(rng.normal(0, 0.02, size=(n_series, days)), DAY, axis=1)
    log_p95 = np.log(800) + 0.2 * np.sin(2 * np.pi * t) + day_level + rng.normal(0, 0.06, size=(n_series, n))
    return np.exp(log_p95)


def seasonal_calls(seed: int, days: int = 4, n_series: int = 1, base: float = 60.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY) / DAY
    return rng.poisson(base * np.exp(0.4 * np.sin(2 * np.pi * t)), size=(n_series, days * DAY)).astype(float)
