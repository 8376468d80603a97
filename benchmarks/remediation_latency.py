"""Alert raised → policy decision → active revision → a real LiteLLM proxy serving the new deployment.

Embedded setup: Keel served by uvicorn in this process (SQLite + chDB in a throwaway var dir), a LiteLLM proxy
subprocess with the Keel plugin (pull mode: ETag + long-poll) and two fake OpenAI-compatible upstreams. Each trial
creates a firing ``anomaly.Alert`` and calls ``controlplane.routing.policies.on_alert_fired`` (what the alerts engine
does when an alert fires) for an automatic rollback policy without cooldown; the clock stops at the first proxied
request answered by the other deployment (``x-litellm-model-id``). Target: p95 ≤ 10 s.

Run: ``python -m benchmarks.run remediation`` (needs ``litellm[proxy]`` from the dev extra).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

TRIALS = int(os.environ.get("KEEL_BENCH_REMEDIATION_TRIALS", "10"))
TARGET_P95_S = 10.0
RESULTS = Path(__file__).resolve().parent / "results" / "remediation.json"


def _setup_django() -> str:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"  # throwaway var dir: SQLite + chDB
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from ingestion.clickhouse.migrator import migrate

    call_command("migrate", verbosity=0)
    migrate(log=lambda _line: None)
    try:
        import controlplane.urls  # noqa: F401
    except Exception:  # another app's pages failing to import must not stop the measurement
        settings.ROOT_URLCONF = "tests.gateway.urls"
    return str(settings.ROOT_URLCONF)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    urlconf = _setup_django()
    from django.utils import timezone

    from anomaly.models import Alert
    from controlplane.apikeys import issue_key
    from controlplane.models import Policy, Project
    from controlplane.routing import policies, services
    from tests.gateway import harness
    from tests.gateway.fake_openai import fake_openai

    project = Project.objects.create(slug=f"bench-{uuid.uuid4().hex[:6]}", name="remediation benchmark")
    actor = services.Actor("user:bench")
    route = services.declare_route(project, "chat-default", actor=actor)
    for gid in ("chat-default-v1", "chat-default-v2"):
        services.declare_deployment(route, gid, actor=actor)
    services.reroute(route, actor, "start on v2 so the first rollback has a target", weights={"chat-default-v2": 100})
    Policy.objects.create(project=project, name="rollback on latency", detector="latency_p95", min_severity="warning",
                          min_duration_s=0, action="rollback", mode="auto", cooldown_s=0, max_actions_per_hour=10_000,
                          min_calls=0, max_staleness_s=10**6, verify_after_s=3600)
    read_key = issue_key(project, ["read"]).secret

    totals: list[float] = []
    decisions: list[float] = []
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp, harness.keel_server() as keel, \
            fake_openai("model-v1") as v1, fake_openai("model-v2") as v2, \
            harness.litellm_proxy(Path(tmp), {"chat-default-v1": v1.url, "chat-default-v2": v2.url},
                                  keel_url=keel, read_key=read_key) as proxy:
        for trial in range(TRIALS + 1):  # trial 0 warms up
            before = proxy.served_by()
            want = "chat-default-v1" if before == "chat-default-v2" else "chat-default-v2"
            now = timezone.now()
            started = time.monotonic()
            alert = Alert.objects.create(
                project=project, fingerprint=uuid.uuid4().hex, detector="latency_p95", route="chat-default",
                series_key={"route": "chat-default"}, title="p95 latency up", severity="critical", opened_at=now,
                last_seen_at=now, episode_started_at=now, group_key=uuid.uuid4().hex)
            outcome = [d.outcome for d in policies.on_alert_fired(alert.pk)]
            decided = time.monotonic() - started
            if outcome != ["executed"]:
                raise RuntimeError(f"trial {trial}: policy did not act: {outcome}")
            deadline = started + 30
            while proxy.served_by() != want:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"trial {trial}: proxy still not on {want} after 30 s")
                time.sleep(0.05)
            total = time.monotonic() - started
            Alert.objects.filter(pk=alert.pk).update(state="resolved", resolved_at=timezone.now())
            if trial:
                totals.append(total)
                decisions.append(decided)
            print(f"trial {trial}: decision {decided * 1000:.0f} ms, serving {want} after {total:.2f} s", flush=True)

    from importlib.metadata import version

    result = {
        "benchmark": "remediation",
        "what": "alert created → on_alert_fired (policy, guardrails, rollback, audit) → LiteLLM serves new deployment",
        "trials": len(totals),
        "end_to_end_s": {"p50": statistics.median(totals), "p95": _percentile(totals, 0.95), "max": max(totals),
                         "min": min(totals)},
        "decision_ms": {"p50": statistics.median(decisions) * 1000, "p95": _percentile(decisions, 0.95) * 1000},
        "target_p95_s": TARGET_P95_S,
        "meets_target": _percentile(totals, 0.95) <= TARGET_P95_S,
        "gateway": f"litellm {version('litellm')} (pull mode: plugin long-poll on /api/v1/routing/policy)",
        "urlconf": urlconf,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
