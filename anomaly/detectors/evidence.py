"""What a detector hands back: per-point scores with their band, and the evidence an alert carries.

Every method reports ``severity``: its statistic divided by its alerting threshold, so 1.0 means
"breach" for every method and methods can be combined with ``max`` and fed to one alert policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Index = Any


@dataclass(frozen=True, slots=True)
class PointScores:
    """One method's view of a batch of series; arrays are (series, time).

    ``severity`` is >= 1 where the method considers the point a breach (NaN-free: unknown scores 0).
    The band the UI draws is kept as ``center`` +/- ``half_width`` in the method's working units (log
    for multiplicative metrics) and converted to the metric's units only on request, for the rows
    asked: converting 10M points nobody looks at was a third of a sweep's time.
    """

    method: str
    observed: FloatArray
    severity: FloatArray
    center: FloatArray
    half_width: FloatArray
    log_scale: bool = False
    floor: float | None = None
    ceiling: float | None = None

    def _units(self, values: FloatArray) -> FloatArray:
        out = np.exp(values) if self.log_scale else np.asarray(values, dtype=np.float64)
        if self.floor is not None or self.ceiling is not None:
            out = np.clip(out, self.floor, self.ceiling)
        return out

    def expected(self, index: Index = ...) -> FloatArray:
        return self._units(np.asarray(self.center[index]))

    def lower(self, index: Index = ...) -> FloatArray:
        return self._units(np.asarray(self.center[index] - self.half_width[index]))

    def upper(self, index: Index = ...) -> FloatArray:
        return self._units(np.asarray(self.center[index] + self.half_width[index]))


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
    return np.minimum(np.where(severity > 0, severity, 0.0), 1e6)
