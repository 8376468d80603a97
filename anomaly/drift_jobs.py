"""Drift jobs: distributions of recent calls against a reference, per environment × route × model version, and
canaries.

* **window drift** — the last ``current`` minutes of a route × version against the ``reference`` period before it;
* **canary** — on a route where a new model version appeared recently, that version's calls against the previous
  version's calls over the same period, in the same environment (a staging canary is compared with staging).

A drift series is the sweep's route × version series (:data:`~anomaly.rollups.Grouping.ROUTE_VERSION`: the same
ClickHouse key columns and series-key labels, ``environment`` included), so prod and staging are never mixed and
alerts, fingerprints and incidents are per environment like the sweep's.

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
from anomaly.rollups import Grouping, key_columns, labels_of
from anomaly.sweep import configs_for
from controlplane.models import Project
from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.schema import CALLS_TABLE

logger = logging.getLogger(__name__)

FEATURES = ("input_tokens", "output_tokens", "latency_ms", "finish_reason", "error_type")
SAMPLE_PER_SERIES = 2_000
CANARY_MIN_CALLS = 50

SERIES = Grouping.ROUTE_VERSION
Labels = tuple[str, ...]  # the values of ``labels_of(SERIES)``: environment, route, model version
_VERSION_AT = labels_of(SERIES).index("model_version")
Samples = dict[Labels, dict[str, list[Any]]]


def series_key(labels: Labels) -> dict[str, str]:
    """The window-drift series key of a sample: the sweep's route × version key (environment included)."""
    return {**dict(zip(labels_of(SERIES), labels, strict=True)), "grouping": SERIES.value}


def _place_and_version(labels: Labels) -> tuple[Labels, str]:
    """Where a series runs (environment, route) and which model version serves it there."""
    return labels[:_VERSION_AT] + labels[_VERSION_AT + 1:], labels[_VERSION_AT]


def _with_version(place: Labels, version: str) -> Labels:
    return (*place[:_VERSION_AT], version, *place[_VERSION_AT:])


@dataclass(frozen=True, slots=True)
class CallSampleQuery:
    """A capped, deterministic sample of calls per environment × route × model version in [``start``, ``end``)."""

    tenant_id: str
    start: datetime
    end: datetime
    per_series: int = SAMPLE_PER_SERIES

    def sql(self) -> str:
        keys = ", ".join(key_columns(SERIES))
        return (
            f"SELECT {keys}, toFloat64(InputTokens), toFloat64(OutputTokens), DurationMs, "
            "if(empty(FinishReasons), '_none', FinishReasons[1]), if(IsError = 1, ErrorType, '_none') "
            f"FROM {CALLS_TABLE} WHERE ProjectId = {{tenant:String}} "
            "AND Timestamp >= {start:DateTime64(3)} AND Timestamp < {end:DateTime64(3)} "
            f"ORDER BY {keys}, cityHash64(TraceId, SpanId) "
            f"LIMIT {{per_series:UInt32}} BY {keys}"
        )

    def run(self) -> Samples:
        if not self.tenant_id:
            raise ValueError("a tenant id is required")
        params = {
            "tenant": self.tenant_id,
            "start": self.start.replace(tzinfo=None),
            "end": self.end.replace(tzinfo=None),
            "per_series": self.per_series,
        }
        width = len(key_columns(SERIES))
        out: Samples = defaultdict(lambda: {f: [] for f in FEATURES})
        for row in get_client().query(self.sql(), parameters=params).result_rows:
            columns = out[tuple(row[:width])]
            for name, value in zip(FEATURES, row[width:], strict=True):
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
    """Compare windows and canaries for every environment × route × version; open/resolve alerts; return the drifted
    features."""
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
        for labels, sample in recent.items():
            if labels in before:
                compared.append((DetectorKind.DRIFT, series_key(labels), _compare(before[labels], sample)))
    if canary_on:
        for place, (new, previous) in _canaries(recent, before).items():
            key = {**series_key(_with_version(place, new)), "previous_version": previous, "grouping": "canary"}
            old = _with_version(place, previous)
            baseline = before.get(old) or recent.get(old) or {}
            compared.append((DetectorKind.CANARY, key, _compare(baseline, recent[_with_version(place, new)])))
    for kind, key, results in compared:
        drifted = [r for r in results if r.drifted]
        findings += [DriftFinding(kind, key, r, (now - current, now)) for r in drifted]
        _reconcile(project, kind, key, drifted, configs, now, now - current)
    _resolve_split(project, compared, now)
    return findings


def _compare(reference: dict[str, list[Any]], current: dict[str, list[Any]]) -> list[DriftResult]:
    if not reference:
        return []
    try:
        return canary_compare(reference, current)
    except Exception:
        logger.exception("drift comparison failed; skipping this series")
        return []


def _canaries(recent: Samples, before: Samples) -> dict[Labels, tuple[str, str]]:
    """Places (environment × route) where a version present now was absent before, and the busiest earlier version
    it replaces there: a version new in staging is compared with staging's previous version, never with prod's."""
    out: dict[Labels, tuple[str, str]] = {}
    for labels, sample in recent.items():
        if labels in before or len(sample["latency_ms"]) < CANARY_MIN_CALLS:
            continue
        place, model = _place_and_version(labels)
        earlier = [(len(s["latency_ms"]), v) for (p, v), s in
                   ((_place_and_version(b), s) for b, s in before.items()) if p == place]
        previous = max(earlier, key=lambda pair: pair[0], default=None)
        if previous is not None:
            out[place] = (model, previous[1])
    return out


def _resolve_split(
    project: Project, compared: list[tuple[DetectorKind, dict[str, str], list[DriftResult]]], now: datetime
) -> None:
    """Resolve open alerts of the environment-less key (``environment: ""``, what migration 0002 gave alerts stored
    before the split) whose series is now compared in a named environment; the per-environment alert opened in this
    run has already joined their incident, so nobody is paged twice."""
    seen = {alerts.fingerprint(project, kind, key) for kind, key, _results in compared}
    for kind, key, _results in compared:
        if not key.get("environment"):
            continue
        legacy = alerts.fingerprint(project, kind, {**key, "environment": ""})
        if legacy in seen:
            continue  # environment-less traffic of that series still exists and is compared on its own
        open_alert = Alert.objects.filter(project=project, fingerprint=legacy, state__in=OPEN_STATES).first()
        if open_alert is not None:
            alerts.auto_resolve(open_alert, now=now, reason="series split by environment")


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
    if key.get("environment"):
        subject += f" in {key['environment']}"
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
            "environment": key.get("environment", ""),
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
