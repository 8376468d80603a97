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

    An incremental sweep scores only the newest buckets: then ``severity``, ``center`` and ``half_width``
    hold buckets ``offset:`` of the grid (``observed`` always has the full width). Read them through
    :meth:`severity_at`, :meth:`expected`, :meth:`lower` and :meth:`upper`, which take grid indices and
    answer 0 / NaN before ``offset``; padding four 10M-point arrays with NaN cost more than the scoring.
    """

    method: str
    observed: FloatArray
    severity: FloatArray
    center: FloatArray
    half_width: FloatArray
    log_scale: bool = False
    floor: float | None = None
    ceiling: float | None = None
    offset: int = 0

    def _units(self, values: FloatArray) -> FloatArray:
        out = np.exp(values) if self.log_scale else np.asarray(values, dtype=np.float64)
        if self.floor is not None or self.ceiling is not None:
            out = np.clip(out, self.floor, self.ceiling)
        return out

    def _take(self, array: FloatArray, index: Index, fill: float) -> FloatArray:
        """``array`` read with a grid index: (row, column) or (row, slice of columns), or ``...``."""
        if self.offset == 0:
            return np.asarray(array[index])
        width = self.offset + array.shape[-1]
        if index is ...:
            out = np.full((*array.shape[:-1], width), fill)
            out[..., self.offset :] = array
            return out
        row, col = index
        if isinstance(col, slice):
            first, stop, step = col.indices(width)
            if step != 1:
                raise ValueError("only contiguous column slices are supported")
            head = array[row, :0]
            out = np.full((*head.shape[:-1], max(stop - first, 0)), fill)
            lo = max(first, self.offset)
            if stop > lo:
                out[..., lo - first :] = array[row, lo - self.offset : stop - self.offset]
            return out
        col = int(col) + (width if int(col) < 0 else 0)
        if col < self.offset:
            return np.asarray(np.full(array[row, :0].shape[:-1], fill) if array[row, :0].ndim > 1 else fill)
        return np.asarray(array[row, col - self.offset])

    def severity_at(self, index: Index = ...) -> FloatArray:
        return self._take(self.severity, index, 0.0)

    def expected(self, index: Index = ...) -> FloatArray:
        return self._units(self._take(self.center, index, np.nan))

    def lower(self, index: Index = ...) -> FloatArray:
        return self._units(self._take(self.center, index, np.nan) - self._take(self.half_width, index, np.nan))

    def upper(self, index: Index = ...) -> FloatArray:
        return self._units(self._take(self.center, index, np.nan) + self._take(self.half_width, index, np.nan))


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
