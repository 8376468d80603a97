"""End-to-end sweep speed: ``anomaly.sweep.sweep_project`` over 1,000 series × 7 days of minute rollups in chDB.

Unlike ``detector_sweep`` (the numpy detectors alone on synthetic matrices), this times what the per-minute Celery
job does: the rollup family queries against the embedded ClickHouse, the pivot into matrices, every enabled
detector (``detect_batch``) for route × model version and per service, and the alert reconciliation in Django
(SQLite). Rollups are written straight into ``rollups_1m`` with ``INSERT … SELECT … FROM numbers()`` (quantile
states built from several latency samples per minute) and merged (``OPTIMIZE … FINAL``) before timing; five
series get a latency step in their last 30 minutes so the sweep also opens alerts. The process is pinned to one
CPU core. Timed, in order: the first sweep ever (nothing finalised in ``series_1m``: it backfills the week's
settled minutes, then loads), a cold sweep (a new worker: empty process cache, ``series_1m`` up to date), warm
per-minute sweeps (each after one more minute of rollups is inserted; one of them crosses the 30-minute
finalisation grid) and a restarted worker at the end. Target: ≤ 10 s for a sweep.

    python -m benchmarks.detector_sweep_e2e [--routes 500] [--versions 2] [--days 7] [--warm 3]

Runs in a child process with its own throwaway KEEL_VAR_DIR (the embedded store is owned by one process).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
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


def load(tenant: str, routes: int, versions: int, minutes: int, end: datetime, first: int = 0, count: int | None = None,
         optimize: bool = True) -> float:
    """One row per series × minute for minute indexes ``[first, first + count)`` of the window ending at ``end``
    (``minutes`` long), as the rollup MV leaves it after merges."""
    from ingestion.clickhouse.client import get_client
    from ingestion.clickhouse.schema import QUANTILE_FUNCTION, QUANTILES

    STATE = f"{QUANTILE_FUNCTION}State({QUANTILES})"
    start = (end - timedelta(minutes=minutes)).replace(tzinfo=None)
    series = routes * versions
    count = minutes if count is None else count
    total = series * count
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
    SELECT number AS n, intDiv(n, {count}) AS s, {first} + n % {count} AS m,
        toDateTime({{start:DateTime}}) + 60 * m AS minute,
        toUInt64(10 + 5 * sin(2 * pi() * m / 1440) + (cityHash64(s, m) % 5)) AS calls,
        toUInt64((cityHash64(s, m, 1) % 100) = 0) AS errors,
        (600 + 20 * (s % 50)) * (1 + 0.1 * sin(2 * pi() * m / 1440)) * exp(0.08 * ((cityHash64(s, m, 2) % 1000) / 500
            - 1)) * if(s < {STEPPED_SERIES} AND m >= {minutes - 30}, 3, 1) AS lat
    FROM numbers({offset}, {min(chunk, total - offset)})
)""",
            parameters={"tenant": tenant, "start": start},
        )
    if optimize:
        get_client().command("OPTIMIZE TABLE rollups_1m FINAL")
    return time.perf_counter() - began


def child(routes: int, versions: int, days: int, warm_sweeps: int) -> dict[str, object]:
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
    # The simulated minutes (up to ~35 after `end`) stay in the past: what is settled follows the window's end, not
    # a clock that the simulation has run ahead of.
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=40)
    load_seconds = load(project.tenant_id, routes, versions, minutes, end)
    print(f"loaded {routes * versions} series x {minutes} minutes in {load_seconds:.0f} s", flush=True)

    if hasattr(os, "sched_setaffinity"):
        # One core for every thread: pid 0 would pin only this thread, and chDB's pool threads already exist.
        core = {sorted(os.sched_getaffinity(0))[0]}
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that just ended
                os.sched_setaffinity(int(task), core)
    window = Window.ending_now(minutes, end)
    began = time.perf_counter()
    matrix = load_series(project.tenant_id, Grouping.ROUTE_VERSION, window, {Family.TRAFFIC, Family.LATENCY})
    query_seconds = time.perf_counter() - began

    from anomaly.rollups import settled_cache

    def timed(at: datetime) -> tuple[float, float, sweep.SweepReport]:
        wall, cpu = time.perf_counter(), time.process_time()  # chDB runs in-process: its threads count as CPU
        result = sweep.sweep_project(project, now=at)
        return time.perf_counter() - wall, time.process_time() - cpu, result

    from anomaly import finalised

    def new_worker() -> None:
        settled_cache.clear()
        finalised._checked.clear()

    new_worker()
    first_wall, first_cpu, report = timed(end)
    first_phases = {name: round(v, 2) for name, v in report.seconds.items()}
    print(f"first sweep (backfills series_1m, then loads): {first_wall:.2f} s wall, {first_cpu:.2f} s CPU, "
          f"phases {first_phases}", flush=True)
    new_worker()
    cold_wall, cold_cpu, report = timed(end)
    cold_phases = {name: round(v, 2) for name, v in report.seconds.items()}
    print(f"cold sweep (new worker: settled minutes from series_1m, fills the cache): {cold_wall:.2f} s wall, "
          f"{cold_cpu:.2f} s CPU, phases {cold_phases}", flush=True)
    warm: list[tuple[float, float]] = []
    phases: list[dict[str, float]] = []
    for k in range(1, warm_sweeps + 1):
        # The per-minute job: one more minute of rollups arrives (a fresh unmerged part), the window slides by one.
        load(project.tenant_id, routes, versions, minutes, end, first=minutes + k - 1, count=1, optimize=False)
        wall, cpu, report = timed(end + timedelta(minutes=k))
        warm.append((wall, cpu))
        phases.append({name: round(v, 2) for name, v in report.seconds.items()})
        print(f"warm sweep {k} (window slid {k} min): {wall:.2f} s wall, {cpu:.2f} s CPU, phases {phases[-1]}",
              flush=True)
    # The warm sweep at which the finalised end next moves on its grid: it finalises a batch of 30 settled minutes.
    settled_minute = int((end - finalised.SETTLE).timestamp()) // 60
    grid = int(finalised.FINALISE_EVERY.total_seconds()) // 60
    k = warm_sweeps + 1 + (-(settled_minute + warm_sweeps + 1)) % grid
    load(project.tenant_id, routes, versions, minutes, end, first=minutes + warm_sweeps, count=k - warm_sweeps,
         optimize=False)
    grid_wall, grid_cpu, grid_report = timed(end + timedelta(minutes=k))
    grid_phases = {name: round(v, 2) for name, v in grid_report.seconds.items()}
    print(f"warm sweep finalising a batch (window slid {k} min): {grid_wall:.2f} s wall, {grid_cpu:.2f} s CPU, "
          f"phases {grid_phases}", flush=True)
    # A worker that just (re)started: nothing in its memory; the settled minutes come from series_1m.
    new_worker()
    k += 1
    load(project.tenant_id, routes, versions, minutes, end, first=minutes + k - 1, count=1, optimize=False)
    restart_wall, restart_cpu, restart_report = timed(end + timedelta(minutes=k))
    restart_phases = {name: round(v, 2) for name, v in restart_report.seconds.items()}
    print(f"restarted-worker sweep (series_1m): {restart_wall:.2f} s wall, {restart_cpu:.2f} s CPU, "
          f"phases {restart_phases}", flush=True)
    leaders = Alert.objects.filter(project=project, incident__isnull=True).count()
    warm_wall = sorted(w for w, _ in warm)[len(warm) // 2] if warm else float("nan")
    warm_cpu = sorted(c for _, c in warm)[len(warm) // 2] if warm else float("nan")
    return {
        "benchmark": "detector_sweep_e2e",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "series_route_version": len(matrix),
        "series_service": report.series.get("service"),
        "minutes": minutes,
        "load_seconds": round(load_seconds, 1),
        "rollup_queries_route_version_seconds": round(query_seconds, 2),
        "first_sweep_with_backfill_seconds": {"wall": round(first_wall, 2), "cpu": round(first_cpu, 2),
                                              "phases": first_phases},
        "cold_sweep_seconds": {"wall": round(cold_wall, 2), "cpu": round(cold_cpu, 2), "phases": cold_phases},
        "warm_sweep_seconds": [{"wall": round(w, 2), "cpu": round(c, 2)} for w, c in warm],
        "warm_sweep_finalising_batch_seconds": {"wall": round(grid_wall, 2), "cpu": round(grid_cpu, 2),
                                                "phases": grid_phases},
        "restarted_worker_sweep_seconds": {"wall": round(restart_wall, 2), "cpu": round(restart_cpu, 2),
                                           "phases": restart_phases},
        "warm_sweep_phase_wall_seconds": phases,
        "warm_sweep_median_wall_seconds": round(warm_wall, 2),
        "warm_sweep_median_cpu_seconds": round(warm_cpu, 2),
        "target_seconds": TARGET_SECONDS,
        "target_applies_to": "every sweep of a running system: warm (settled minutes in the worker's memory) and "
                             "cold (new or restarted worker, settled minutes read finalised from series_1m). The "
                             "first sweep of a project ever backfills series_1m once and is reported separately",
        "meets_target": max(warm_wall, cold_wall, grid_wall, restart_wall) <= TARGET_SECONDS,
        "meets_target_cpu": max(warm_cpu, cold_cpu, grid_cpu, restart_cpu) <= TARGET_SECONDS,
        "cache": {"hits": settled_cache.hits, "misses": settled_cache.misses},
        "series_error_types": report.series.get("error_types"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "detectors_run": report.detectors_run,
        "failures": report.failures,
        "alerts_open": Alert.objects.filter(project=project, state="firing").count(),
        "paging_alerts": leaders,
        "stepped_series": STEPPED_SERIES,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "notes": "One CPU core (sched_setaffinity), embedded chDB, SQLite; every default-enabled periodic detector "
                 "for route × version and per service. The first sweep backfills series_1m and opens the alerts; "
                 "each warm sweep follows one more inserted minute of rollups and refreshes them. The machine is "
                 "shared with other engineers' jobs (see load_average): CPU time is the steadier figure.",
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--routes", type=int, default=500)
    parser.add_argument("--versions", type=int, default=2)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--warm", type=int, default=3, help="warm per-minute sweeps after the cold one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    if args.child:
        result = child(args.routes, args.versions, args.days, args.warm)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"warm sweep {result['warm_sweep_median_wall_seconds']} s (target {TARGET_SECONDS} s), cold "
              f"{result['cold_sweep_seconds']} -> {RESULTS}")
        return result
    with tempfile.TemporaryDirectory(prefix="keel-bench-sweep-") as var:
        env = {**os.environ, "KEEL_VAR_DIR": var, "DJANGO_SETTINGS_MODULE": "controlplane.settings",
               "KEEL_CLICKHOUSE_URL": f"chdb://{var}/clickhouse", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, "-m", "benchmarks.detector_sweep_e2e", "--child", "--routes", str(args.routes),
                        "--versions", str(args.versions), "--days", str(args.days), "--warm", str(args.warm)],
                       cwd=ROOT, env=env, check=True)
    return json.loads(RESULTS.read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
