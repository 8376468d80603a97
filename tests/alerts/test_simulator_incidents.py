"""End to end: the simulator's scripted incidents, replayed through the sweep minute by minute, page once each.

The simulator's own span generator (``OtlpSender.record``: real OpenTelemetry SDK spans) produces a day of history
plus the incident schedule; the spans are written the way a Collector writes them into ``otel_traces`` (the
exporter is not used, which keeps the test fast), the materialized views build ``llm_calls`` and the rollups, and
the sweep runs every few minutes of simulated time, as beat would.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from anomaly import sweep
from anomaly.models import Alert
from ingestion.simulator import incident_schedule
from ingestion.simulator.otlp import OtlpSender
from ingestion.simulator.traffic import TrafficModel
from tests.alerts.traffic import insert

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

SEED = 11
RATE = 1.0  # calls per second
HISTORY = timedelta(hours=24)
ORIGIN = datetime(2026, 11, 19, 10, 0, tzinfo=UTC)  # incidents start after this
SWEEP_EVERY = timedelta(minutes=3)


def _value(value: object) -> str:
    if isinstance(value, tuple | list):
        return json.dumps(list(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rows(sender: OtlpSender, tenant: str) -> list[list[object]]:
    rows: list[list[object]] = []
    for span in sender._collect.take():
        resource = {k: _value(v) for k, v in span.resource.attributes.items()}
        resource["keel.project_id"] = tenant
        attributes = {k: _value(v) for k, v in (span.attributes or {}).items()}
        start = datetime.fromtimestamp(span.start_time / 1e9, tz=UTC).replace(tzinfo=None)
        rows.append([
            start, os.urandom(16).hex(), os.urandom(8).hex(), "", "", span.name, "Client",
            resource.get("service.name", ""), resource, span.instrumentation_scope.name,
            span.instrumentation_scope.version or "", attributes, span.end_time - span.start_time,
            "Error" if span.status.status_code.name == "ERROR" else "Unset", span.status.description or "",
            [], [], [], [], [], [], [],
        ])
    return rows


def _generate(ch, tenant: str, start: datetime, end: datetime, incidents) -> None:  # type: ignore[no-untyped-def]
    model = TrafficModel(SEED, incidents=incidents)
    sender = OtlpSender("http://127.0.0.1:9", "unused")
    try:
        minute = start
        while minute < end:
            sender.record(model.minute(minute, RATE))
            minute += timedelta(minutes=1)
            if sender.pending() >= 20_000:
                insert(ch, _rows(sender, tenant))
        insert(ch, _rows(sender, tenant))
    finally:
        sender.close()


def test_each_scripted_incident_raises_exactly_one_page(project, ch) -> None:  # type: ignore[no-untyped-def]
    schedule = incident_schedule(SEED, ORIGIN)
    assert [i.kind for i in schedule] == ["version", "errors", "prompt"]
    end = schedule[-1].ends_at + timedelta(minutes=40)
    _generate(ch, project.tenant_id, ORIGIN - HISTORY, end, schedule)

    now = ORIGIN
    while now <= end:
        report = sweep.sweep_project(project, now=now, window_minutes=int((now - ORIGIN + HISTORY).total_seconds()
                                                                           // 60))
        assert report.failures == []
        now += SWEEP_EVERY

    pages = list(Alert.objects.filter(project=project, incident__isnull=True).order_by("opened_at"))
    summary = [(p.title, p.opened_at.strftime("%H:%M")) for p in pages]
    for incident in schedule:
        during = [p for p in pages if incident.starts_at <= p.opened_at <= incident.ends_at + timedelta(minutes=10)]
        assert len(during) == 1, (incident.kind, incident.starts_at, summary)
    assert len(pages) == len(schedule), summary
