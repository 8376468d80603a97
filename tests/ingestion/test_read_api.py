"""The read API over real chDB: spans written the Collector way, read back with real API keys."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest

from rest_framework.test import APIClient

from controlplane.apikeys import issue_key, revoke_key
from controlplane.models import Membership, Project, Role
from ingestion.pagination import encode_cursor
from ingestion.selectors import TenantQuery, UnscopedQuery
from ingestion.selectors.calls import CallPosition
from tests.support import COLLECTOR_COLUMNS

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
BASE = NOW - dt.timedelta(hours=3)  # calls land in [BASE, BASE + 1h): an hour-aligned window covers them
PRICED_MODEL = "readapi-model"  # priced below; "readapi-unpriced" has no price


def span(tenant: str, *, minute: int, service: str = "checkout", route: str = "", model: str = PRICED_MODEL,
         provider: str = "openai", error: bool = False, tokens: tuple[int, int] = (100, 50),
         ttft_s: float | None = None, trace_id: str = "") -> list[Any]:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model,
             "gen_ai.response.model": model, "gen_ai.usage.input_tokens": str(tokens[0]),
             "gen_ai.usage.output_tokens": str(tokens[1])}
    if route:
        attrs["keel.route"] = route
    if error:
        attrs["error.type"] = "RateLimitError"
    if ttft_s is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = str(ttft_s)
    start = BASE + dt.timedelta(minutes=minute, seconds=7, microseconds=123456)
    return [
        start, trace_id or os.urandom(16).hex(), os.urandom(8).hex(), "", "", f"chat {model}", "Client", service,
        {"service.name": service, "keel.project_id": tenant}, "opentelemetry.instrumentation.openai_v2", "2.4b0",
        attrs, 1_200_000_000, "Error" if error else "Unset", "", [], [], [], [], [], [], [],
    ]


@pytest.fixture
def world(ch):  # type: ignore[no-untyped-def]
    ch.insert(
        "keel_prices",
        [[PRICED_MODEL, "openai", dt.date(2024, 1, 1), dt.date(2100, 1, 1), 2.0, 8.0, 1.0, 0.0, 1]],
        column_names=["model", "provider", "valid_from", "valid_to", "input_per_mtok", "output_per_mtok",
                      "cached_input_per_mtok", "reasoning_per_mtok", "version"],
    )
    ch.command("SYSTEM RELOAD DICTIONARY keel_price_dict")
    a = Project.objects.create(slug=f"a-{os.urandom(4).hex()}", name="A")
    b = Project.objects.create(slug=f"b-{os.urandom(4).hex()}", name="B")
    shared_trace = os.urandom(16).hex()
    rows_a = [
        span(a.tenant_id, minute=1, service="checkout", route="chat-main", ttft_s=0.25, trace_id=shared_trace),
        span(a.tenant_id, minute=2, service="checkout", route="chat-main", error=True, tokens=(10, 0)),
        span(a.tenant_id, minute=3, service="search", route="chat-cheap", model="readapi-unpriced",
             provider="anthropic"),
        span(a.tenant_id, minute=4, service="search", route="chat-cheap", tokens=(1000, 500)),
        span(a.tenant_id, minute=5, service="checkout", route="chat-main"),
        span(a.tenant_id, minute=6, service="support", route="chat-main"),
        span(a.tenant_id, minute=7, service="support", route="chat-main"),
    ]
    rows_b = [span(b.tenant_id, minute=m, service="b-svc", route="b-route", trace_id=shared_trace if m == 1 else "")
              for m in (1, 2, 3)]
    ch.insert("otel_traces", rows_a + rows_b, column_names=COLLECTOR_COLUMNS)
    return {
        "a": a, "b": b, "rows_a": rows_a, "rows_b": rows_b, "shared_trace": shared_trace,
        "key_a": issue_key(a, ["read"]).secret, "key_b": issue_key(b, ["read"]).secret,
    }


def client(key: str | None = None) -> APIClient:
    c = APIClient()
    if key:
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return c


def get(key: str, path: str, **params: Any) -> Any:
    response = client(key).get(path, params)
    assert response.status_code == 200, response.content
    return response.json()


def test_calls_newest_first_with_every_field(world) -> None:  # type: ignore[no-untyped-def]
    body = get(world["key_a"], "/api/v1/calls")
    assert body["next"] is None
    results = body["results"]
    assert len(results) == 7
    assert [r["span_id"] for r in results] == [row[2] for row in reversed(world["rows_a"])]
    first = results[-1]  # minute 1: priced, streamed-style TTFT
    assert first == {
        "trace_id": world["shared_trace"], "span_id": world["rows_a"][0][2],
        "timestamp": (BASE + dt.timedelta(minutes=1, seconds=7, microseconds=123456)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"),
        "service": "checkout", "route": "chat-main", "provider": "openai", "request_model": PRICED_MODEL,
        "response_model": PRICED_MODEL, "operation": "chat", "input_tokens": 100, "output_tokens": 50,
        "cost_usd": pytest.approx((100 * 2.0 + 50 * 8.0) / 1e6), "priced": True, "duration_ms": 1200.0,
        "ttft_ms": 250.0, "status": "ok", "error_type": "",
    }
    unpriced = next(r for r in results if r["request_model"] == "readapi-unpriced")
    assert unpriced["cost_usd"] is None and unpriced["priced"] is False and unpriced["ttft_ms"] is None
    failed = next(r for r in results if r["status"] == "error")
    assert failed["error_type"] == "RateLimitError"


@pytest.mark.parametrize(("params", "minutes"), [
    ({"service": "search"}, [4, 3]),
    ({"route": "chat-cheap"}, [4, 3]),
    ({"provider": "anthropic"}, [3]),
    ({"model": "readapi-unpriced"}, [3]),
    ({"status": "error"}, [2]),
    ({"status": "ok", "service": "checkout"}, [5, 1]),
    ({"since": (BASE + dt.timedelta(minutes=5)).isoformat(), "until": (BASE + dt.timedelta(minutes=7)).isoformat()},
     [6, 5]),
    ({"until": (BASE + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}, [1]),
])
def test_calls_filters(world, params, minutes) -> None:  # type: ignore[no-untyped-def]
    results = get(world["key_a"], "/api/v1/calls", **params)["results"]
    expected = [world["rows_a"][m - 1][2] for m in minutes]
    assert [r["span_id"] for r in results] == expected


def test_trace_filter_stays_inside_the_tenant(world) -> None:  # type: ignore[no-untyped-def]
    a = get(world["key_a"], "/api/v1/calls", trace_id=world["shared_trace"].upper())["results"]
    b = get(world["key_b"], "/api/v1/calls", trace_id=world["shared_trace"])["results"]
    assert [r["span_id"] for r in a] == [world["rows_a"][0][2]]
    assert [r["span_id"] for r in b] == [world["rows_b"][0][2]]


def test_cursor_pagination_walks_every_row_once(world) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    url: str | None = "/api/v1/calls?limit=2"
    pages = 0
    while url:
        response = client(world["key_a"]).get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["results"]) <= 2
        seen += [r["span_id"] for r in body["results"]]
        url = body["next"]
        pages += 1
    assert pages == 4
    assert seen == [row[2] for row in reversed(world["rows_a"])]
    # With filters the cursor keeps them (the next URL carries every parameter).
    first = get(world["key_a"], "/api/v1/calls", limit=1, service="checkout")
    assert "service=checkout" in first["next"]
    second = client(world["key_a"]).get(first["next"]).json()
    walked = [r["span_id"] for r in first["results"] + second["results"]]
    assert walked == [world["rows_a"][4][2], world["rows_a"][1][2]]


def test_no_cross_tenant_leakage(world) -> None:  # type: ignore[no-untyped-def]
    a_spans = {row[2] for row in world["rows_a"]}
    b_body = get(world["key_b"], "/api/v1/calls", limit=500)
    assert {r["span_id"] for r in b_body["results"]} == {row[2] for row in world["rows_b"]}
    assert not a_spans & {r["span_id"] for r in b_body["results"]}
    usage_b = get(world["key_b"], "/api/v1/usage", since=BASE.isoformat(), until=NOW.isoformat(), group_by="service")
    assert [g["key"] for g in usage_b["results"]] == ["b-svc"] and usage_b["totals"]["calls"] == 3


@pytest.mark.parametrize("evil", [
    "x' OR 1=1 --",
    "') OR ProjectId != '' OR ('",
    "{tenant:String}",
    "checkout\\' OR \\'1\\'=\\'1",
    "checkout; DROP TABLE llm_calls",
    "\\N \t tab ☃ ünïcode",
])
def test_sql_injection_in_filters_finds_nothing(world, ch, evil) -> None:  # type: ignore[no-untyped-def]
    for name in ("service", "route", "provider", "model"):
        assert get(world["key_b"], "/api/v1/calls", **{name: evil})["results"] == []
    forged = encode_cursor(CallPosition(2**62, evil[:60], evil[:30]))
    spans = {r["span_id"] for r in get(world["key_b"], "/api/v1/calls", cursor=forged)["results"]}
    assert spans <= {row[2] for row in world["rows_b"]}
    assert ch.query("SELECT count() FROM llm_calls").result_rows[0][0] > 0


def test_usage_grouped_from_rollups(world) -> None:  # type: ignore[no-untyped-def]
    hour_later = (BASE + dt.timedelta(hours=1)).isoformat()
    body = get(world["key_a"], "/api/v1/usage", since=BASE.isoformat(), until=hour_later, group_by="route")
    assert body["granularity"] == "hour" and body["group_by"] == "route"
    by_route = {g["key"]: g for g in body["results"]}
    assert set(by_route) == {"chat-main", "chat-cheap"}
    main = by_route["chat-main"]
    assert (main["calls"], main["errors"], main["input_tokens"], main["output_tokens"], main["unpriced_calls"]) == (
        5, 1, 410, 200, 0)
    assert main["cost_usd"] == pytest.approx((410 * 2.0 + 200 * 8.0) / 1e6)
    cheap = by_route["chat-cheap"]
    assert (cheap["calls"], cheap["unpriced_calls"]) == (2, 1)
    assert cheap["cost_usd"] == pytest.approx((1000 * 2.0 + 500 * 8.0) / 1e6)
    assert body["totals"]["calls"] == 7 and body["totals"]["unpriced_calls"] == 1

    # A window not on hour boundaries reads the per-minute rollups and honours the minutes.
    body = get(world["key_a"], "/api/v1/usage", since=(BASE + dt.timedelta(minutes=3)).isoformat(),
               until=(BASE + dt.timedelta(minutes=5)).isoformat(), group_by="model")
    assert body["granularity"] == "minute"
    assert {g["key"]: g["calls"] for g in body["results"]} == {PRICED_MODEL: 1, "readapi-unpriced": 1}
    providers = get(world["key_a"], "/api/v1/usage", since=BASE.isoformat(), until=NOW.isoformat(),
                    group_by="provider")
    assert {g["key"]: g["calls"] for g in providers["results"]} == {"openai": 6, "anthropic": 1}


def test_usage_defaults_to_last_day_by_model(world, ch) -> None:  # type: ignore[no-untyped-def]
    body = get(world["key_a"], "/api/v1/usage")
    assert body["group_by"] == "model"
    assert {g["key"]: g["calls"] for g in body["results"]} == {PRICED_MODEL: 6, "readapi-unpriced": 1}


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/api/v1/calls", {"since": "yesterday"}, "since"),
    ("/api/v1/calls", {"limit": "501"}, "limit"),
    ("/api/v1/calls", {"limit": "0"}, "limit"),
    ("/api/v1/calls", {"status": "broken"}, "status"),
    ("/api/v1/calls", {"trace_id": "xyz"}, "trace_id"),
    ("/api/v1/calls", {"cursor": "not-a-cursor"}, "cursor"),
    ("/api/v1/calls", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ("/api/v1/calls", {"since": "0001-01-01T00:00:00Z"}, "since"),
    ("/api/v1/usage", {"until": "9999-12-31T23:59:59Z"}, "until"),
    ("/api/v1/usage", {"group_by": "user"}, "group_by"),
    ("/api/v1/calls", {"service": "nul\x00byte"}, "service"),
    ("/api/v1/usage", {"until": "2026-13-40"}, "until"),
])
def test_bad_parameters_are_400_naming_the_field(world, path, params, field) -> None:  # type: ignore[no-untyped-def]
    response = client(world["key_a"]).get(path, params)
    assert response.status_code == 400
    assert field in response.json()["detail"], response.json()


def test_authentication_and_scopes(world) -> None:  # type: ignore[no-untyped-def]
    for path in ("/api/v1/calls", "/api/v1/usage"):
        assert client().get(path).status_code == 401
        assert client("keel_nope_nope").get(path).status_code == 401
        ingest_only = issue_key(world["a"], ["ingest"]).secret
        response = client(ingest_only).get(path)
        assert response.status_code == 403 and "detail" in response.json()
    admin_key = issue_key(world["a"], ["admin"]).secret
    assert len(get(admin_key, "/api/v1/calls")["results"]) == 7
    issued = issue_key(world["a"], ["read"])
    revoke_key(issued.api_key)
    assert client(issued.secret).get("/api/v1/calls").status_code == 401


def test_session_member_reads_their_project(world, django_user_model) -> None:  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_user("reader", password="x")
    Membership.objects.create(user=user, project=world["b"], role=Role.VIEWER)
    c = APIClient()
    c.force_login(user)
    body = c.get("/api/v1/calls", {"project": world["b"].slug}).json()
    assert {r["span_id"] for r in body["results"]} == {row[2] for row in world["rows_b"]}
    assert c.get("/api/v1/calls", {"project": world["a"].slug}).status_code == 403


def test_tenant_query_refuses_unscoped_sql(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnscopedQuery):
        TenantQuery("")
    q = TenantQuery(world["a"].tenant_id)
    with pytest.raises(UnscopedQuery, match="does not filter"):
        q.rows("SELECT count() FROM llm_calls", {})
    with pytest.raises(UnscopedQuery, match="bound by TenantQuery"):
        q.rows("SELECT count() FROM llm_calls WHERE ProjectId = {tenant:String}", {"tenant": world["b"].tenant_id})
    with pytest.raises(UnscopedQuery, match="unbound"):
        q.rows("SELECT count() FROM llm_calls WHERE ProjectId = {tenant:String} AND Route = {r:String}", {})
    assert q.rows("SELECT count() FROM llm_calls WHERE ProjectId = {tenant:String}", {}) == [(7,)]


def test_openapi_schema_documents_parameters_and_responses() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    calls = schema["paths"]["/api/v1/calls"]["get"]
    names = {p["name"] for p in calls["parameters"]}
    assert {"since", "until", "service", "route", "provider", "model", "trace_id", "status", "limit",
            "cursor"} <= names
    assert set(calls["responses"]) >= {"200", "400", "401", "403", "503"}
    usage = schema["paths"]["/api/v1/usage"]["get"]
    assert {"since", "until", "group_by"} <= {p["name"] for p in usage["parameters"]}
    assert "UsageGroup" in schema["components"]["schemas"]


def test_clickhouse_down_is_503_with_retry_after(world, settings) -> None:  # type: ignore[no-untyped-def]
    settings.KEEL_CLICKHOUSE_URL = "http://127.0.0.1:9/default"  # nothing listens on the discard port
    for path in ("/api/v1/calls", "/api/v1/usage"):
        response = client(world["key_a"]).get(path)
        assert response.status_code == 503
        assert response["Retry-After"] == "5" and "unavailable" in response.json()["detail"]


def test_a_re_stored_span_is_listed_once(world, ch) -> None:  # type: ignore[no-untyped-def]
    # A retry batched with a new span: a different insert block, so only llm_calls' FINAL collapses the repeat.
    again, new = list(world["rows_b"][0]), span(world["b"].tenant_id, minute=9, service="b-svc")
    ch.command("SYSTEM STOP MERGES llm_calls")  # keep both copies on disk for the duration of the check
    try:
        ch.insert("otel_traces", [again, new], column_names=COLLECTOR_COLUMNS)
        stored = ch.query("SELECT count() FROM llm_calls WHERE ProjectId = {t:String} AND SpanId = {s:String}",
                          parameters={"t": world["b"].tenant_id, "s": again[2]}).result_rows[0][0]
        spans = [r["span_id"] for r in get(world["key_b"], "/api/v1/calls")["results"]]
    finally:
        ch.command("SYSTEM START MERGES llm_calls")
    assert stored == 2
    assert sorted(spans) == sorted([new[2]] + [row[2] for row in world["rows_b"]])
