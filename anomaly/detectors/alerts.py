"""From per-bucket severities to alert episodes: one incident, one alert.

Rules, all in buckets of the series' cadence:

* an alert fires once severity has been >= ``enter`` for ``min_consecutive`` buckets in a row, or at once
  on a single bucket >= ``fast_enter`` (when set): evidence that strong needs no confirmation;
* it resolves only after ``clear_after`` buckets in a row below ``enter * exit_ratio`` (hysteresis, so a
  metric hovering around the threshold does not flap);
* a breach within ``cooldown`` buckets after resolution re-opens the same incident silently instead of
  paging again.

The function is stateless: it replays the whole window, which is what both the backtest and a periodic
job over "history + the last minutes" need. Python only iterates over alerts, never over buckets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from anomaly.detectors.evidence import clean_severity
from anomaly.series import as_batch

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    min_consecutive: int = 2
    enter: float = 1.0
    exit_ratio: float = 0.6
    clear_after: int = 5
    cooldown: int = 30
    # None: no fast path (detect_batch then applies the metric preset's own, if any).
    fast_enter: float | None = None

    def __post_init__(self) -> None:
        if self.min_consecutive < 1 or self.clear_after < 1 or self.cooldown < 0:
            raise ValueError("min_consecutive and clear_after must be >= 1 and cooldown >= 0")
        if not 0.0 < self.exit_ratio <= 1.0 or self.enter <= 0:
            raise ValueError("exit_ratio must be in (0, 1] and enter > 0")
        if self.fast_enter is not None and not self.fast_enter >= self.enter:
            raise ValueError("fast_enter must be >= enter")


@dataclass(frozen=True, slots=True)
class Episode:
    """One incident on one series; indices are buckets of the analysed window."""

    series: int
    start: int
    fired: int
    end: int | None
    peak: int
    peak_severity: float

    @property
    def is_open(self) -> bool:
        return self.end is None


def run_lengths(mask: npt.NDArray[np.bool_]) -> IntArray:
    """Length of the run of True ending at each position, along the last axis."""
    n = mask.shape[-1]
    idx = np.arange(n, dtype=np.int64)
    last_false = np.where(mask, -1, idx)
    np.maximum.accumulate(last_false, axis=-1, out=last_false)
    return np.where(mask, idx - last_false, 0)


def _by_series(mask: npt.NDArray[np.bool_]) -> dict[int, IntArray]:
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return {}
    splits = np.flatnonzero(np.diff(rows)) + 1
    return {int(r[0]): c for r, c in zip(np.split(rows, splits), np.split(cols, splits), strict=True)}


def _first_after(sorted_idx: IntArray | None, value: int) -> int | None:
    if sorted_idx is None:
        return None
    pos = int(np.searchsorted(sorted_idx, value, side="right"))
    return int(sorted_idx[pos]) if pos < sorted_idx.size else None


def decide_alerts(severity: npt.ArrayLike, policy: AlertPolicy | None = None) -> list[Episode]:
    """Alert episodes for a series (T,) or a batch (S, T) of severities (NaN counts as no breach)."""
    policy = policy or AlertPolicy()
    sev = clean_severity(as_batch(severity).copy())
    if sev.shape[1] == 0:
        return []
    breach_run = run_lengths(sev >= policy.enter)
    entry_mask = breach_run == policy.min_consecutive
    if policy.fast_enter is not None and policy.min_consecutive > 1:
        # Later candidates inside the same run are skipped by the episode walk below.
        entry_mask |= (breach_run < policy.min_consecutive) & (sev >= policy.fast_enter)
    entries = _by_series(entry_mask)
    if not entries:
        return []
    calm_run = run_lengths(sev < policy.enter * policy.exit_ratio)
    recoveries = _by_series(calm_run == policy.clear_after)
    episodes: list[Episode] = []
    for series, series_entries in entries.items():
        series_recoveries = recoveries.get(series)
        i = 0
        while i < series_entries.size:
            fired = int(series_entries[i])
            end = _first_after(series_recoveries, fired)
            while end is not None:
                reopened = _first_after(series_entries, end)
                if reopened is None or reopened > end + policy.cooldown:
                    break
                end = _first_after(series_recoveries, reopened)
            start = fired - int(breach_run[series, fired]) + 1
            stop = sev.shape[1] if end is None else end + 1
            peak = start + int(np.argmax(sev[series, start:stop]))
            episodes.append(Episode(series, start, fired, end, peak, float(sev[series, peak])))
            if end is None:
                break
            i = int(np.searchsorted(series_entries, end + policy.cooldown, side="right"))
    return episodes


def fired_flags(episodes: list[Episode], shape: tuple[int, int]) -> npt.NDArray[np.int8]:
    """1 at the bucket where each alert fired, 0 elsewhere: what the backtest prints per row."""
    flags = np.zeros(shape, dtype=np.int8)
    for episode in episodes:
        flags[episode.series, episode.fired] = 1
    return flags
