"""Time-series metrics and traces over the API: same data as the dashboards, tenant-scoped, validated."""

from __future__ import annotations

import datetime as dt

import pytest

from rest_framework.test import APIClient

from controlplane.apikeys import issue_key
from controlplane.models import Project
from tests.support import COLLECTOR_COLUMNS

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _span(tenant: str, span_id: str, model: str, minute: int, parent: str = "") -> list[object]:
    start = dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0) - dt.timedelta(minutes=minute)
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
             "gen_ai.response.model": model, "gen_ai.usage.input_tokens": "10", "gen_ai.usage.output_tokens": "5",
             "keel.route": "chat-default"}
    return [start, TRACE, span_id, parent, "", f"chat {model}", "Client", "svc",
            {"service.name": "svc", "keel.project_id": tenant}, "scope", "1", attrs, 1_000_000_000, "Unset", "",
            [], [], [], [], [], [], []]


@pytest.fixture
def projects(db: None, ch) -> tuple[Project, Project]:  # type: ignore[no-untyped-def]
    a = Project.objects.create(slug="metrics-a", name="A")
    b = Project.objects.create(slug="metrics-b", name="B")
    ch.insert("otel_traces", [_span(a.tenant_id, "00f067aa0ba902b7", "model-x", 5),
                              _span(a.tenant_id, "00f067aa0ba902b8", "model-y", 65, parent="00f067aa0ba902b7")],
              column_names=COLLECTOR_COLUMNS)
    return a, b


def _client(project: Project) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(project, ['read']).secret}")
    return client


def test_timeseries_totals_and_split(projects: tuple[Project, Project]) -> None:
    a, b = projects
    body = _client(a).get("/api/v1/metrics/timeseries?range=24h").json()
    assert sum(p["calls"] for p in body["points"]) == 2
    assert all(len(p["latency"]) == 4 for p in body["points"])
    split = _client(a).get("/api/v1/metrics/timeseries?range=24h&split=model").json()
    assert {p["key"] for p in split["points"]} == {"model-x", "model-y"}
    only_x = _client(a).get("/api/v1/metrics/timeseries?range=24h&model=model-x").json()
    assert sum(p["calls"] for p in only_x["points"]) == 1
    assert _client(b).get("/api/v1/metrics/timeseries?range=24h").json()["points"] == []
    bad = _client(a).get("/api/v1/metrics/timeseries?split=user")
    assert bad.status_code == 400 and "split" in bad.json()["detail"]


def test_trace_with_spans_and_calls_is_tenant_scoped(projects: tuple[Project, Project]) -> None:
    a, b = projects
    trace = _client(a).get(f"/api/v1/traces/{TRACE.upper()}").json()
    assert [s["span_id"] for s in trace["spans"]] == ["00f067aa0ba902b8", "00f067aa0ba902b7"]
    assert {c["model"] for c in trace["calls"]} == {"model-x", "model-y"}
    assert _client(b).get(f"/api/v1/traces/{TRACE}").status_code == 404
    assert _client(a).get("/api/v1/traces/not-a-trace").status_code == 400
