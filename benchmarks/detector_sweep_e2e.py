"""End-to-end sweep speed: ``anomaly.sweep.sweep_project`` over 1,000 series × 7 days of minute rollups in chDB.

Unlike ``detector_sweep`` (the numpy detectors alone on synthetic matrices), this times what the per-minute Celery
job does: the rollup family queries against the embedded ClickHouse, the pivot into matrices, every enabled
detector (``detect_batch``) for route × model version and per service, and the alert reconciliation in Django
(SQLite). Rollups are written straight into ``rollups_1m`` with ``INSERT … SELECT … FROM numbers()`` (quantile
states built from several latency samples per minute) and merged (``OPTIMIZE … FINAL``) before timing; five
series get a latency step in their last 30 minutes so the sweep also opens alerts. The process is pinned to one
CPU core. Target: ≤ 10 s.

    python -m benchmarks.detector_sweep_e2e [--routes 500] [--versions 2] [--days 7] [--repeat 2]

Runs in a child process with its own throwaway KEEL_VAR_DIR (the embedded store is owned by one process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "detector_sweep_e2e.json"
TARGET_SECONDS = 10.0
SERVICES = 20
STEPPED_SERIES = 5
SAMPLES_PER_MINUTE = 8


def load(tenant: str, routes: int, versions: int, minutes: int, end: datetime) -> float:
    """One row per series × minute, as the rollup MV leaves it after merges."""
    from ingestion.clickhouse.client import get_client
    from ingestion.clickhouse.schema import QUANTILE_FUNCTION, QUANTILES

    STATE = f"{QUANTILE_FUNCTION}State({QUANTILES})"
    start = (end - timedelta(minutes=minutes)).replace(tzinfo=None)
    series = routes * versions
    total = series * minutes
    began = time.perf_counter()
    chunk = 2_000_000
    for offset in range(0, total, chunk):
        get_client().command(
            f"""INSERT INTO rollups_1m (ProjectId, Minute, Environment, Route, ServiceName, Provider, ResponseModel,
    CostCenter, Calls, Errors, Streamed, InputTokens, OutputTokens, CacheReadTokens, ReasoningTokens, Cost,
    UnpricedCalls, DurationMsSum, ErrorTypes, FinishReasons, LatencyQ, TtftQ, OutputTokensQ, InputTokensQ)
SELECT {{tenant:String}}, minute, 'prod', concat('route-', toString(s % {routes})),
    concat('svc-', toString(s % {SERVICES})), 'openai', concat('model-v', toString(intDiv(s, {routes}))), '',
    calls, errors, calls, calls * 200, calls * 100, 0, 0, calls * 0.002, 0, calls * lat,
    map('_none', toUInt64(0)), map('stop', calls),
    arrayReduce('{STATE}', arrayMap(i -> lat * exp(0.1 * sin(i * 7 + m)), range(
        {SAMPLES_PER_MINUTE}))),
    arrayReduce('{STATE}', arrayMap(i -> lat * 0.2 * exp(0.1 * sin(i * 3 + m)), range(
        {SAMPLES_PER_MINUTE}))),
    arrayReduce('{STATE}', [toUInt32(100)]),
    arrayReduce('{STATE}', [toUInt32(200)])
FROM (
    SELECT number AS n, intDiv(n, {minutes}) AS s, n % {minutes} AS m,
        toDateTime({{start:DateTime}}) + 60 * m AS minute,
        toUInt64(10 + 5 * sin(2 * pi() * m / 1440) + (cityHash64(n) % 5)) AS calls,
        toUInt64((cityHash64(n, 1) % 100) = 0) AS errors,
        (600 + 20 * (s % 50)) * (1 + 0.1 * sin(2 * pi() * m / 1440)) * exp(0.08 * ((cityHash64(n, 2) % 1000) / 500
            - 1)) * if(s < {STEPPED_SERIES} AND m >= {minutes - 30}, 3, 1) AS lat
    FROM numbers({offset}, {min(chunk, total - offset)})
)""",
            parameters={"tenant": tenant, "start": start},
        )
    get_client().command("OPTIMIZE TABLE rollups_1m FINAL")
    return time.perf_counter() - began


def child(routes: int, versions: int, days: int, repeat: int) -> dict[str, object]:
    import django

    django.setup()
    from django.core.management import call_command

    from anomaly import sweep
    from anomaly.models import Alert
    from anomaly.rollups import Family, Grouping, Window, load_series
    from controlplane.models import Project
    from ingestion.clickhouse.migrator import migrate

    call_command("migrate", verbosity=0, interactive=False)
    migrate(log=lambda _line: None)
    project = Project.objects.create(slug="bench", name="Benchmark project")
    minutes = days * 1440
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    load_seconds = load(project.tenant_id, routes, versions, minutes, end)
    print(f"loaded {routes * versions} series x {minutes} minutes in {load_seconds:.0f} s", flush=True)

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, chDB threads included
    window = Window.ending_now(minutes, end)
    began = time.perf_counter()
    matrix = load_series(project.tenant_id, Grouping.ROUTE_VERSION, window, {Family.TRAFFIC, Family.LATENCY})
    query_seconds = time.perf_counter() - began

    sweeps: list[float] = []
    report = None
    for _ in range(repeat):
        began = time.perf_counter()
        report = sweep.sweep_project(project, now=end)
        sweeps.append(time.perf_counter() - began)
        print(f"sweep {len(sweeps)}: {sweeps[-1]:.2f} s", flush=True)
    assert report is not None
    leaders = Alert.objects.filter(project=project, incident__isnull=True).count()
    best = min(sweeps)
    return {
        "benchmark": "detector_sweep_e2e",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "series_route_version": len(matrix),
        "series_service": report.series.get("service"),
        "minutes": minutes,
        "load_seconds": round(load_seconds, 1),
        "rollup_queries_route_version_seconds": round(query_seconds, 2),
        "sweep_seconds": [round(s, 2) for s in sweeps],
        "best_sweep_seconds": round(best, 2),
        "target_seconds": TARGET_SECONDS,
        "meets_target": best <= TARGET_SECONDS,
        "detectors_run": report.detectors_run,
        "failures": report.failures,
        "alerts_open": Alert.objects.filter(project=project, state="firing").count(),
        "paging_alerts": leaders,
        "stepped_series": STEPPED_SERIES,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "notes": "One CPU core (sched_setaffinity), embedded chDB, SQLite; every default-enabled periodic detector "
                 "for route × version and per service; first sweep opens the alerts, later ones refresh them. "
                 "The machine is shared with other engineers' jobs; see load_average.",
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--routes", type=int, default=500)
    parser.add_argument("--versions", type=int, default=2)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    if args.child:
        result = child(args.routes, args.versions, args.days, args.repeat)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"best sweep {result['best_sweep_seconds']} s (target {TARGET_SECONDS} s) -> {RESULTS}")
        return result
    with tempfile.TemporaryDirectory(prefix="keel-bench-sweep-") as var:
        env = {**os.environ, "KEEL_VAR_DIR": var, "DJANGO_SETTINGS_MODULE": "controlplane.settings",
               "KEEL_CLICKHOUSE_URL": f"chdb://{var}/clickhouse", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, "-m", "benchmarks.detector_sweep_e2e", "--child", "--routes", str(args.routes),
                        "--versions", str(args.versions), "--days", str(args.days), "--repeat", str(args.repeat)],
                       cwd=ROOT, env=env, check=True)
    return json.loads(RESULTS.read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
