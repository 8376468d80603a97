"""Server time of every dashboard page with 10 million calls over 30 days in the embedded store.

Loads ``llm_calls`` directly with ``INSERT … SELECT … FROM numbers()`` (the rollup and coverage materialized views
fire on those inserts exactly as they do for ingested spans), then requests each page repeatedly through the
Django test client as a signed-in admin and reports p50/p95 per page. Target: p95 ≤ 300 ms.

    python -m benchmarks.dashboard_latency [--calls 10000000] [--repeat 20]

Runs in a child process with its own throwaway KEEL_VAR_DIR (the embedded store is owned by one process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dashboard_latency.json"
TARGET_P95_MS = 300.0
CHUNK = 1_000_000
DAYS = 30

# One busy project: each route belongs to one service and cost center and is served by two model versions
# (a realistic fan-out: ~24 series per minute, not the full cross product).
ROUTES = ["chat", "summarise", "classify", "extract", "agent", "search"]
MODELS = [("openai", "gpt-4o-mini-2024-07-18"), ("openai", "gpt-4o-2024-08-06"),
          ("anthropic", "claude-3-5-sonnet-20241022"), ("anthropic", "claude-3-5-haiku-20241022"),
          ("gcp.gemini", "gemini-1.5-pro-002"), ("openai", "o3-mini-2025-01-31"), ("acme", "in-house-llm-7b")]
SERVICES = ["checkout", "support-bot", "search-api", "back-office"]
ENVIRONMENTS = ["prod", "staging"]
COST_CENTERS = ["growth", "support", "platform"]


def _array(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "") + "'" for v in values) + "]"


def load(tenant: str, calls: int) -> float:
    """Insert ``calls`` rows spread over the last 30 days; returns seconds taken."""
    from ingestion.clickhouse.client import get_client

    ch = get_client()
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    providers = _array([p for p, _ in MODELS])
    models = _array([m for _, m in MODELS])
    started = time.perf_counter()
    for offset in range(0, calls, CHUNK):
        n = min(CHUNK, calls - offset)
        ch.command(
            f"""INSERT INTO llm_calls (ProjectId, Timestamp, TraceId, SpanId, ServiceName, Environment, Route, Provider,
            RequestModel, ResponseModel, Operation, SpanName, StatusCode, IsError, ErrorType, DurationMs, TtftMs,
            Streamed, InputTokens, OutputTokens, InputCost, OutputCost, TotalCost, Priced, CostSource, CostCenter,
            UserId, ScopeName, ScopeVersion, Conventions)
            SELECT {{tenant:String}},
              toDateTime64({{now:DateTime}} - toIntervalSecond(intDiv((number + {{offset:UInt64}}) * {DAYS * 86400},
                {{total:UInt64}})), 9) AS ts,
              lower(hex(cityHash64(number + {{offset:UInt64}}, 1))) || lower(hex(cityHash64(number, 2))),
              lower(hex(cityHash64(number + {{offset:UInt64}}, 3))),
              {_array(SERVICES)}[1 + (intDiv(number, 3) % {len(ROUTES)}) % {len(SERVICES)}],
              {_array(ENVIRONMENTS)}[1 + ((number % 10) = 0)],
              {_array(ROUTES)}[1 + (intDiv(number, 3) % {len(ROUTES)})],
              {providers}[1 + (intDiv(number, 3) % {len(ROUTES)} + cityHash64(number, 4) % 2) % {len(MODELS)}],
              {models}[1 + (intDiv(number, 3) % {len(ROUTES)} + cityHash64(number, 4) % 2) % {len(MODELS)}] AS model,
              model, 'chat', 'chat ' || model,
              if(cityHash64(number, 5) % 100 < 2, 'Error', 'Unset'),
              toUInt8(cityHash64(number, 5) % 100 < 2),
              if(cityHash64(number, 5) % 100 < 2, ['RateLimitError', 'Timeout', 'APIError'][1 + number % 3], ''),
              300 + (cityHash64(number, 6) % 4000) AS dur,
              if(number % 2 = 0, dur * 0.2, NULL), toUInt8(number % 2 = 0),
              100 + cityHash64(number, 7) % 2000 AS tin, 20 + cityHash64(number, 8) % 800 AS tout,
              if(model = 'in-house-llm-7b', NULL, tin * 2.5e-6), if(model = 'in-house-llm-7b', NULL, tout * 1e-5),
              if(model = 'in-house-llm-7b', NULL, tin * 2.5e-6 + tout * 1e-5),
              toUInt8(model != 'in-house-llm-7b'), if(model = 'in-house-llm-7b', '', 'price_table'),
              {_array(COST_CENTERS)}[1 + (intDiv(number, 3) % {len(ROUTES)}) % {len(COST_CENTERS)}],
              'user-' || toString(cityHash64(number, 9) % 5000),
              'opentelemetry.instrumentation.openai_v2', '2.4b0', ['gen_ai']
            FROM numbers({n})""",
            parameters={"tenant": tenant, "now": now, "offset": offset, "total": calls},
        )
        print(f"  loaded {offset + n:,} calls ({time.perf_counter() - started:.0f} s)", flush=True)
    return time.perf_counter() - started


def measure(repeat: int) -> dict[str, dict[str, float]]:
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client

    from controlplane.models import Membership, Project

    project = Project.objects.get(slug="bench")
    user = get_user_model().objects.get(username="bench-admin")
    Membership.objects.get_or_create(user=user, project=project, defaults={"role": "admin"})
    client = Client()
    client.force_login(user)
    pages = {
        "overview (24h)": "/", "overview (30d)": "/?range=30d", "cost (24h)": "/cost/",
        "cost (30d)": "/cost/?range=30d", "cost by user (24h, fetched)": "/cost/users/",
        "cost by user (30d, fetched)": "/cost/users/?range=30d",
        "cost by user (30d, prod only)": "/cost/users/?range=30d&environment=prod",
        "cost by user (7d, route filter: calls)": "/cost/users/?range=7d&route=chat",
        "latency (24h)": "/latency/", "latency (7d)": "/latency/?range=7d", "versions (24h)": "/versions/",
        "versions (30d)": "/versions/?range=30d", "traces (24h)": "/traces/", "traces search": "/traces/?q=refund",
        "coverage (24h)": "/coverage/", "alerts": "/alerts/", "routes": "/routes/", "settings": "/settings/",
        "overview filtered (7d)": "/?range=7d&model=gpt-4o-2024-08-06&route=chat",
    }
    out: dict[str, dict[str, float]] = {}
    for name, url in pages.items():
        joiner = "&" if "?" in url else "?"
        full = f"{url}{joiner}project=bench"
        assert client.get(full).status_code == 200, full  # warm the process (templates, marks, dictionaries)
        cache.clear()  # the first view of a long range pays for its quantile merges; report it separately
        t0 = time.perf_counter()
        assert client.get(full).status_code == 200, full
        cold = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            response = client.get(full)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (full, response.status_code)
        times.sort()
        out[name] = {"p50_ms": round(statistics.median(times), 1),
                     "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
                     "max_ms": round(times[-1], 1), "cold_ms": round(cold, 1)}
        print(f"  {name:28s} p50 {out[name]['p50_ms']:7.1f} ms   p95 {out[name]['p95_ms']:7.1f} ms   "
              f"cold {cold:7.1f} ms", flush=True)
    return out


def child(calls: int, repeat: int) -> dict[str, object]:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from controlplane.models import Project
    from ingestion.clickhouse.client import get_client
    from ingestion.clickhouse.migrator import migrate

    call_command("migrate", verbosity=0, interactive=False)
    migrate(log=lambda _line: None)
    project = Project.objects.create(slug="bench", name="Benchmark project")
    get_user_model().objects.create_user("bench-admin")  # force_login; no password
    load_seconds = load(project.tenant_id, calls)
    ch = get_client()
    for table in ("rollups_1m", "rollups_1h", "rollups_user_1h"):
        ch.command(f"OPTIMIZE TABLE {table} FINAL")  # steady state: background merges have caught up
    rows = {t: ch.query(f"SELECT count() FROM {t} WHERE ProjectId = {{p:String}}", parameters={"p": project.tenant_id})
            .result_rows[0][0] for t in ("llm_calls", "rollups_1m", "rollups_1h", "rollups_user_1h")}
    load_before = os.getloadavg()[0]
    pages = measure(repeat)
    worst = max(p["p95_ms"] for p in pages.values())
    worst_cold = max(p["cold_ms"] for p in pages.values())
    return {
        "benchmark": "dashboard_latency",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "calls": calls, "days": DAYS, "rows": rows, "load_seconds": round(load_seconds, 1),
        "repeat_per_page": repeat, "target_p95_ms": TARGET_P95_MS, "worst_p95_ms": worst,
        "meets_target": worst <= TARGET_P95_MS, "worst_cold_ms": worst_cold,
        "load_average_1m": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
        "pages": pages,
        "notes": "Django test client in-process (server time: view + queries + templates), embedded chDB, "
                 "rollups OPTIMIZEd after the load; p50/p95 over repeated views (ranges over 24 h serve "
                 "rollup reads from a 60 s cache); cold_ms = first view after clearing the cache. "
                 "The machine's load average is recorded: other jobs share its cores.",
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    if args.child:
        result = child(args.calls, args.repeat)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"worst page p95 {result['worst_p95_ms']} ms (target {TARGET_P95_MS} ms) -> {RESULTS}")
        return result
    with tempfile.TemporaryDirectory(prefix="keel-bench-dash-") as var:
        env = {**os.environ, "KEEL_VAR_DIR": var, "DJANGO_SETTINGS_MODULE": "controlplane.settings",
               "KEEL_CLICKHOUSE_URL": f"chdb://{var}/clickhouse"}
        env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, "-m", "benchmarks.dashboard_latency", "--child", "--calls", str(args.calls),
                        "--repeat", str(args.repeat)], cwd=ROOT, env=env, check=True)
    return json.loads(RESULTS.read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
