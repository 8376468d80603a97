"""Backtests over CSV files, with the production detector code and no server or database.

These are the bodies of ``manage.py detect`` and ``manage.py detect-drift``; the commands only open the
file and print the returned lines.

``detect``: input ``timestamp,value[,calls]`` (header optional; epoch seconds/milliseconds or ISO 8601;
any regular cadence; gaps and unsorted rows allowed). Output: one ``timestamp,score,alert`` line per
input row, in input order. ``score`` is the combined severity (>= 1 means a breach); ``alert`` is 1 on
the row where an alert fires after the production consecutive-breach, cooldown and grouping rules, so
each incident shows a single 1.

``detect-drift``: rows of one or more numeric or categorical columns in time order (header optional;
a ``timestamp``/``time`` column is ignored). Output: the 0-based data-row index of each drift alarm.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

from anomaly.detectors import AlertPolicy, Sensitivity, detect_batch
from anomaly.drift import scan_drift
from anomaly.series import regularize

TIME_COLUMNS = {"timestamp", "time", "ts", "datetime", "date"}
_EPOCH_MS_THRESHOLD = 1e11  # larger epoch numbers are milliseconds


def parse_timestamp(text: str) -> float | None:
    """Epoch seconds from epoch seconds/milliseconds or ISO 8601 (naive means UTC); None if unparseable."""
    text = text.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not np.isfinite(number):
            return None
        return number / 1000.0 if abs(number) > _EPOCH_MS_THRESHOLD else number
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_rows(source: TextIO | str | Path) -> list[list[str]]:
    if isinstance(source, str | Path):
        with open(source, newline="") as handle:
            return [row for row in csv.reader(handle) if row]
    return [row for row in csv.reader(source) if row]


def detect_lines(
    source: TextIO | str | Path,
    *,
    metric: str,
    sensitivity: Sensitivity = "medium",
    policy: AlertPolicy | None = None,
) -> list[str]:
    """Run the metric's detectors over a ``timestamp,value[,calls]`` CSV; see the module docstring."""
    rows = _read_rows(source)
    if not rows:
        return []
    header = len(rows[0]) > 1 and not _is_number(rows[0][1]) and rows[0][1].strip().lower() not in ("", "nan")
    data = rows[1:] if header else rows
    out = ["timestamp,score,alert"] if header else []
    if not data:
        return out
    stamps = [parse_timestamp(row[0]) for row in data]
    values = np.array([_parse_float(row[1]) if len(row) > 1 else np.nan for row in data])
    calls = np.array([_parse_float(row[2]) if len(row) > 2 else np.nan for row in data])
    has_calls = bool(np.isfinite(calls).any())
    valid = np.array([s is not None for s in stamps])
    scores = np.zeros(len(data))
    alerts = np.zeros(len(data), dtype=int)
    if valid.any():
        epoch = np.array([s for s in stamps if s is not None])
        grid, grid_values, positions = regularize(epoch, values[valid])
        grid_calls = regularize(epoch, calls[valid], step=grid.step)[1] if has_calls else None
        result = detect_batch(
            grid_values,
            grid.timestamps(),
            metric,
            counts=grid_calls,
            sensitivity=sensitivity,
            policy=policy,
        )
        valid_rows = np.flatnonzero(valid)
        scores[valid_rows] = result.severity[0, positions]
        order = np.argsort(positions, kind="stable")
        sorted_positions = positions[order]
        for episode in result.episodes:
            # An alert can fire on a gap bucket (no calls at all); report it on the next row present.
            k = int(np.searchsorted(sorted_positions, episode.fired, side="left"))
            if k < sorted_positions.size:
                alerts[valid_rows[order[k]]] = 1
    out.extend(f"{row[0]},{score:.3f},{alert}" for row, score, alert in zip(data, scores, alerts, strict=True))
    return out


def _has_header(rows: list[list[str]]) -> bool:
    """A first row whose fields are all non-numeric while some column below is numeric, or names a time column."""
    first = rows[0]
    if any(field.strip().lower() in TIME_COLUMNS for field in first):
        return True
    if any(_is_number(field) for field in first):
        return False
    if len(rows) > 1 and any(_is_number(field) for field in rows[1]):
        return True
    sample = "\n".join(",".join(row) for row in rows[:50])
    try:
        return csv.Sniffer().has_header(sample)
    except csv.Error:
        return False


def drift_lines(source: TextIO | str | Path, *, window: int = 200) -> list[str]:
    """Row indices (0-based, data rows only) where the streaming drift scanner raises an alarm."""
    rows = _read_rows(source)
    if not rows:
        return []
    header = _has_header(rows)
    names = [f.strip() for f in rows[0]] if header else [f"column_{i}" for i in range(len(rows[0]))]
    data = rows[1:] if header else rows
    keep = [i for i, name in enumerate(names) if name.lower() not in TIME_COLUMNS]
    columns = {names[i]: [row[i].strip() if i < len(row) else "" for row in data] for i in keep}
    return [str(index) for index in scan_drift(columns, window=window)]
