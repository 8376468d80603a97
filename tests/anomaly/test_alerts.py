"""Alert decisions: consecutive breaches to open, hysteresis to close, cooldown groups one incident."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly.detectors import AlertPolicy, Episode, decide_alerts, fired_flags

POLICY = AlertPolicy(min_consecutive=2, enter=1.0, exit_ratio=0.5, clear_after=3, cooldown=5)


def sev(*segments: tuple[float, int]) -> np.ndarray:
    return np.concatenate([np.full(n, value) for value, n in segments])


@pytest.mark.parametrize(
    ("name", "severity", "expected"),
    [
        ("single spike is not an alert", sev((0, 5), (9, 1), (0, 10)), []),
        ("two in a row open it", sev((0, 5), (2, 2), (0, 10)), [Episode(0, 5, 6, 9, 5, 2.0)]),
        ("still open at the end", sev((0, 3), (2, 4)), [Episode(0, 3, 4, None, 3, 2.0)]),
        (
            "hovering between exit and enter keeps it open (hysteresis)",
            sev((0, 2), (1.2, 2), (0.7, 20), (0, 3)),
            [Episode(0, 2, 3, 26, 2, 1.2)],
        ),
        (
            "a relapse within the cooldown is the same incident",
            sev((0, 2), (3, 2), (0, 4), (3, 2), (0, 10)),
            [Episode(0, 2, 3, 12, 2, 3.0)],
        ),
        (
            "a relapse after the cooldown is a new incident",
            sev((0, 2), (3, 2), (0, 12), (4, 2), (0, 5)),
            [Episode(0, 2, 3, 6, 2, 3.0), Episode(0, 16, 17, 20, 16, 4.0)],
        ),
        ("NaN never counts as a breach", sev((np.nan, 10)), []),
    ],
)
def test_alert_rules(name: str, severity: np.ndarray, expected: list[Episode]) -> None:
    assert decide_alerts(severity, POLICY) == expected, name


def test_batches_are_decided_per_series() -> None:
    batch = np.zeros((3, 20))
    batch[1, 4:8] = 2.0
    batch[2, 10:12] = 5.0

    episodes = decide_alerts(batch, POLICY)

    assert [(e.series, e.fired) for e in episodes] == [(1, 5), (2, 11)]
    flags = fired_flags(episodes, batch.shape)
    assert flags.sum() == 2 and flags[1, 5] == 1 and flags[2, 11] == 1


def test_long_incident_is_one_alert_however_noisy() -> None:
    rng = np.random.default_rng(0)
    severity = np.concatenate([np.zeros(50), rng.uniform(0.6, 3.0, 500), np.zeros(50)])

    episodes = decide_alerts(severity, AlertPolicy())

    assert len(episodes) == 1 and episodes[0].fired == 51


@pytest.mark.parametrize(
    "kwargs",
    [{"min_consecutive": 0}, {"clear_after": 0}, {"cooldown": -1}, {"exit_ratio": 0.0}, {"exit_ratio": 1.5}],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        AlertPolicy(**kwargs)  # type: ignore[arg-type]
