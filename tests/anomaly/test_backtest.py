"""CSV backtests: one `timestamp,score,alert` line per input row; drift alarms as 0-based row indices."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

from anomaly.backtest import detect_lines, drift_lines, parse_timestamp
from tests.anomaly.synthetic import seasonal_latency, timestamps

LINE = r"^[^,]+,\d+\.\d{3},[01]$"


def latency_csv(header: bool = True, drop_every: int = 0, iso: bool = False) -> tuple[str, int]:
    p95 = seasonal_latency(21)[0]
    onset = 3 * 1440 + 500
    p95[onset : onset + 40] *= 2.2
    rows = ["timestamp,value"] if header else []
    for i, (stamp, value) in enumerate(zip(timestamps(p95.size), p95, strict=True)):
        if drop_every and i % drop_every == 0:
            continue  # gaps
        when = np.datetime_as_string(np.datetime64(int(stamp), "s")) + "Z" if iso else str(stamp)
        rows.append(f"{when},{value:.2f}")
    return "\n".join(rows) + "\n", onset


def test_detect_prints_one_line_per_row_with_one_alert_for_one_incident() -> None:
    text, onset = latency_csv()

    lines = detect_lines(io.StringIO(text), metric="latency")

    assert len(lines) == len(text.splitlines())
    assert lines[0] == "timestamp,score,alert"
    body = lines[1:]
    assert all(re.match(LINE, line) for line in body)
    alert_rows = [i for i, line in enumerate(body) if line.endswith(",1")]
    assert len(alert_rows) == 1 and onset <= alert_rows[0] <= onset + 2
    assert float(body[alert_rows[0]].split(",")[1]) >= 1.0


def test_gaps_iso_timestamps_and_unsorted_rows(tmp_path: Path) -> None:
    text, _ = latency_csv(header=False, drop_every=7, iso=True)
    rows = text.splitlines()
    shuffled = rows[::-1]
    path = tmp_path / "latency.csv"
    path.write_text("\n".join(shuffled) + "\n")

    lines = detect_lines(path, metric="latency", sensitivity="high")

    assert len(lines) == len(shuffled)
    assert [line.split(",")[0] for line in lines] == [row.split(",")[0] for row in shuffled]
    assert sum(line.endswith(",1") for line in lines) == 1


def test_optional_calls_column_drives_the_error_rate_test() -> None:
    rng = np.random.default_rng(22)
    n = 4 * 1440
    calls = rng.poisson(40, n)
    errors = rng.binomial(calls, 0.01)
    errors[4000:4020] = rng.binomial(calls[4000:4020], 0.3)
    rows = ["timestamp,value,calls"] + [
        f"{t},{(e / c if c else 0):.4f},{c}" for t, e, c in zip(timestamps(n), errors, calls, strict=True)
    ]

    lines = detect_lines(io.StringIO("\n".join(rows)), metric="error_rate")

    alerts = [i for i, line in enumerate(lines[1:]) if line.endswith(",1")]
    assert len(alerts) == 1 and 4000 <= alerts[0] <= 4005


@pytest.mark.parametrize(
    "text",
    ["", "timestamp,value\n", "timestamp,value\nnot-a-time,3\n", "1735689600,\n1735689660,nan\n", "1735689600,5\n"],
)
def test_bad_csv_input_yields_lines_without_alerts(text: str) -> None:
    lines = detect_lines(io.StringIO(text), metric="generic")

    assert len(lines) == len(text.splitlines())
    assert not any(line.endswith(",1") for line in lines if line != "timestamp,score,alert")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1735689600", 1_735_689_600.0),
        ("1735689600000", 1_735_689_600.0),
        ("2025-01-01T00:00:00Z", 1_735_689_600.0),
        ("2025-01-01 01:00:00+01:00", 1_735_689_600.0),
        ("2025-01-01T00:00:00", 1_735_689_600.0),
        ("yesterday", None),
        ("", None),
    ],
)
def test_parse_timestamp(text: str, expected: float | None) -> None:
    assert parse_timestamp(text) == expected


def test_detect_drift_prints_row_indices() -> None:
    rng = np.random.default_rng(23)
    tokens = np.concatenate([rng.poisson(300, 1200), rng.poisson(420, 800)])
    reasons = rng.choice(["stop", "length"], 2000, p=[0.95, 0.05])
    text = "timestamp,output_tokens,finish_reason\n" + "\n".join(
        f"{t},{k},{r}" for t, k, r in zip(timestamps(2000), tokens, reasons, strict=True)
    )

    lines = drift_lines(io.StringIO(text), window=200)

    assert len(lines) == 1 and 1200 <= int(lines[0]) < 1400


def test_detect_drift_without_header_and_on_stationary_data() -> None:
    rng = np.random.default_rng(24)
    text = "\n".join(f"{v:.3f}" for v in rng.normal(0, 1, 1500))

    assert drift_lines(io.StringIO(text), window=100) == []
    assert drift_lines(io.StringIO(""), window=100) == []
