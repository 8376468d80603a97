"""What a detector hands back: per-point scores with their band, and the evidence an alert carries.

Every method reports ``severity``: its statistic divided by its alerting threshold, so 1.0 means
"breach" for every method and methods can be combined with ``max`` and fed to one alert policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PointScores:
    """One method's view of a batch of series; every array is (series, time), in the metric's own units.

    ``expected``/``lower``/``upper`` are what the UI draws as the band; ``severity`` is >= 1 where the
    method considers the point a breach (NaN-free: unknown points score 0).
    """

    method: str
    observed: FloatArray
    expected: FloatArray
    lower: FloatArray
    upper: FloatArray
    severity: FloatArray


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why an alert fired, in a shape a model row or a JSON payload can store as is."""

    method: str
    metric: str
    observed: float
    expected: float
    lower: float
    upper: float
    score: float
    window_start: datetime
    window_end: datetime
    details: dict[str, float | str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "metric": self.metric,
            "observed": _json_float(self.observed),
            "expected": _json_float(self.expected),
            "lower": _json_float(self.lower),
            "upper": _json_float(self.upper),
            "score": _json_float(self.score),
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "details": dict(self.details),
        }


def epoch_to_datetime(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(int(epoch_seconds), tz=UTC)


def _json_float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def clean_severity(severity: FloatArray) -> FloatArray:
    """Unknown (NaN) and negative severities become 0 so they can never open or hold an alert."""
    out = np.nan_to_num(severity, nan=0.0, posinf=1e6, neginf=0.0)
    return np.maximum(out, 0.0, out=out)
