"""``manage.py detect`` / ``detect-drift`` run the production detector code on CSV files, with no database or
ClickHouse: the subprocess is pointed at servers that do not exist, so touching either would fail the command."""

from __future__ import annotations

import random
from pathlib import Path

from tests.support import manage

NOWHERE = {
    "KEEL_CLICKHOUSE_URL": "http://127.0.0.1:1/nothing",
    "DATABASE_URL": "postgres://nobody@127.0.0.1:1/nothing",
}


def _latency_csv(path: Path, step: range) -> Path:
    rnd = random.Random(7)
    lines = ["timestamp,value"]
    for i in range(720):
        value = 800 * rnd.lognormvariate(0, 0.05) * (3 if i in step else 1)
        lines.append(f"{1_700_000_000 + 60 * i},{value:.1f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_detect_prints_one_line_per_row_and_one_alert_per_incident(tmp_path: Path) -> None:
    csv = _latency_csv(tmp_path / "latency.csv", range(600, 640))
    done = manage("detect", "--csv", str(csv), "--metric", "latency", env=NOWHERE)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "timestamp,score,alert"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 720
    alerts = [int(ts) for ts, _score, alert in rows if alert == "1"]
    assert len(alerts) == 1
    assert 600 <= (alerts[0] - 1_700_000_000) // 60 <= 603
    assert all(float(score) >= 0 for _ts, score, _a in rows)


def test_detect_sensitivity_and_bad_arguments(tmp_path: Path) -> None:
    csv = _latency_csv(tmp_path / "latency.csv", range(0))
    quiet = manage("detect", "--csv", str(csv), "--metric", "latency", "--sensitivity", "0.1", env=NOWHERE)
    assert quiet.returncode == 0 and not [x for x in quiet.stdout.splitlines()[1:] if x.endswith(",1")]
    bad = manage("detect", "--csv", str(csv), "--metric", "latency", "--sensitivity", "7", env=NOWHERE)
    assert bad.returncode != 0 and "sensitivity" in bad.stderr
    missing = manage("detect", "--csv", str(tmp_path / "nope.csv"), "--metric", "cost", env=NOWHERE)
    assert missing.returncode != 0 and "no such file" in missing.stderr


def test_detect_drift_prints_row_indices(tmp_path: Path) -> None:
    rnd = random.Random(3)
    lines = ["tokens,finish_reason"]
    for i in range(1000):
        tokens = int(rnd.gauss(100 if i < 600 else 180, 10))
        lines.append(f"{tokens},{'stop' if rnd.random() < 0.9 else 'length'}")
    csv = tmp_path / "drift.csv"
    csv.write_text("\n".join(lines) + "\n")
    done = manage("detect-drift", "--csv", str(csv), "--window", "100", env=NOWHERE)
    assert done.returncode == 0, done.stderr
    alarms = [int(x) for x in done.stdout.split()]
    assert len(alarms) == 1 and 600 <= alarms[0] < 700
