"""Drift jobs: distributions of recent calls against a reference, per route × model version, and canaries.

* **window drift** — the last ``current`` minutes of a route × version against the ``reference`` period before it;
* **canary** — on a route where a new model version appeared recently, that version's calls against the previous
  version's calls over the same period.

Samples come from ``llm_calls`` (one bound, tenant-scoped query per period, a deterministic hash sample capped per
series with ``LIMIT n BY``); the statistics are the stats core's :mod:`anomaly.drift`. A drifted feature becomes a
:class:`~anomaly.models.Detection` (method, statistic, p-value, PSI) and goes through the alert service like any
other detection; a comparison that is quiet again resolves its alert.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from anomaly import alerts
from anomaly.drift import DEFAULT_MIN_PSI, DriftResult, canary_compare
from anomaly.models import OPEN_STATES, Alert, DetectorKind
from anomaly.sweep import configs_for
from controlplane.models import Project
from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.schema import CALLS_TABLE

logger = logging.getLogger(__name__)

FEATURES = ("input_tokens", "output_tokens", "latency_ms", "finish_reason", "error_type")
SAMPLE_PER_SERIES = 2_000
CANARY_MIN_CALLS = 50


@dataclass(frozen=True, slots=True)
class CallSampleQuery:
    """A capped, deterministic sample of calls per route × model version between ``start`` and ``end``."""

    tenant_id: str
    start: datetime
    end: datetime
    per_series: int = SAMPLE_PER_SERIES

    def sql(self) -> str:
        return (
            "SELECT Route, ResponseModel, toFloat64(InputTokens), toFloat64(OutputTokens), DurationMs, "
            "if(empty(FinishReasons), '_none', FinishReasons[1]), if(IsError = 1, ErrorType, '_none') "
            f"FROM {CALLS_TABLE} WHERE ProjectId = {{tenant:String}} "
            "AND Timestamp >= {start:DateTime64(3)} AND Timestamp < {end:DateTime64(3)} "
            "ORDER BY Route, ResponseModel, cityHash64(TraceId, SpanId) "
            "LIMIT {per_series:UInt32} BY Route, ResponseModel"
        )

    def run(self) -> dict[tuple[str, str], dict[str, list[Any]]]:
        if not self.tenant_id:
            raise ValueError("a tenant id is required")
        params = {
            "tenant": self.tenant_id,
            "start": self.start.replace(tzinfo=None),
            "end": self.end.replace(tzinfo=None),
            "per_series": self.per_series,
        }
        out: dict[tuple[str, str], dict[str, list[Any]]] = defaultdict(lambda: {f: [] for f in FEATURES})
        for route, model, *values in get_client().query(self.sql(), parameters=params).result_rows:
            columns = out[(route, model)]
            for name, value in zip(FEATURES, values, strict=True):
                columns[name].append(value)
        return dict(out)


@dataclass(frozen=True, slots=True)
class DriftFinding:
    kind: DetectorKind
    series_key: dict[str, str]
    result: DriftResult
    current_window: tuple[datetime, datetime]


def run_drift(
    project: Project,
    *,
    now: datetime | None = None,
    current: timedelta = timedelta(hours=1),
    reference: timedelta = timedelta(hours=24),
) -> list[DriftFinding]:
    """Compare windows and canaries for every route × version; open/resolve alerts; return the drifted features."""
    now = now or timezone.now()
    configs = configs_for(project)
    window_on = configs[DetectorKind.DRIFT].enabled
    canary_on = configs[DetectorKind.CANARY].enabled
    if not (window_on or canary_on):
        return []
    recent = CallSampleQuery(project.tenant_id, now - current, now).run()
    before = CallSampleQuery(project.tenant_id, now - current - reference, now - current).run()
    findings: list[DriftFinding] = []
    compared: list[tuple[DetectorKind, dict[str, str], list[DriftResult]]] = []
    if window_on:
        for (route, model), sample in recent.items():
            if (route, model) in before:
                key = {"route": route, "model_version": model, "grouping": "route_version"}
                compared.append((DetectorKind.DRIFT, key, _compare(before[(route, model)], sample)))
    if canary_on:
        for route, (new, previous) in _canaries(recent, before).items():
            key = {"route": route, "model_version": new, "previous_version": previous, "grouping": "canary"}
            baseline = before.get((route, previous)) or recent.get((route, previous)) or {}
            compared.append((DetectorKind.CANARY, key, _compare(baseline, recent[(route, new)])))
    for kind, key, results in compared:
        drifted = [r for r in results if r.drifted]
        findings += [DriftFinding(kind, key, r, (now - current, now)) for r in drifted]
        _reconcile(project, kind, key, drifted, configs, now, now - current)
    return findings


def _compare(reference: dict[str, list[Any]], current: dict[str, list[Any]]) -> list[DriftResult]:
    if not reference:
        return []
    try:
        return canary_compare(reference, current)
    except Exception:
        logger.exception("drift comparison failed; skipping this series")
        return []


def _canaries(
    recent: dict[tuple[str, str], dict[str, list[Any]]], before: dict[tuple[str, str], dict[str, list[Any]]]
) -> dict[str, tuple[str, str]]:
    """Routes where a version present now was absent before, and the busiest earlier version it replaces."""
    out: dict[str, tuple[str, str]] = {}
    for route, model in recent:
        if (route, model) in before or len(recent[(route, model)]["latency_ms"]) < CANARY_MIN_CALLS:
            continue
        previous = max(
            ((m, len(s["latency_ms"])) for (r, m), s in before.items() if r == route), key=lambda p: p[1],
            default=None,
        )
        if previous is not None:
            out[route] = (model, previous[0])
    return out


def _reconcile(
    project: Project,
    kind: DetectorKind,
    key: dict[str, str],
    drifted: list[DriftResult],
    configs: dict[str, Any],
    now: datetime,
    window_start: datetime,
) -> None:
    config = configs[kind]
    fp = alerts.fingerprint(project, kind, key)
    if not drifted:
        open_alert = Alert.objects.filter(project=project, fingerprint=fp, state__in=OPEN_STATES).first()
        if open_alert is not None:
            alerts.auto_resolve(open_alert, now=now, reason="distributions match again")
        return
    worst = max(drifted, key=lambda r: r.effect_size)
    features = ", ".join(r.feature for r in drifted)
    what = "canary" if kind == DetectorKind.CANARY else "drift"
    subject = f"{key['route']} {key['model_version']}"
    if kind == DetectorKind.CANARY:
        subject += f" vs {key['previous_version']}"
    obs = alerts.Observation(
        project=project,
        detector=kind,
        series_key=key,
        title=f"{what}: {features} on {subject}",
        score=worst.effect_size / DEFAULT_MIN_PSI,
        episode_started_at=window_start,
        metric=worst.feature,
        method=worst.test,
        window_start=window_start,
        window_end=now,
        observed=worst.effect_size,
        expected=0.0,
        lower=0.0,
        upper=DEFAULT_MIN_PSI,
        p_value=worst.p_value,
        statistic=worst.statistic,
        details={
            "features": [
                {"feature": r.feature, "test": r.test, "statistic": r.statistic, "p_value": r.p_value,
                 "psi": r.effect_size, "wasserstein": r.wasserstein, "n_reference": r.n_reference,
                 "n_current": r.n_current}
                for r in drifted
            ]
        },
        cooldown_minutes=config.cooldown_minutes,
        renotify_minutes=config.renotify_minutes,
    )
    alerts.observe(obs, now=now)
