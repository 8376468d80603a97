"""Hostile input: the OTLP receiver and every read filter answer bad input with a 4xx (or a 200 with partial
success), never a 5xx, never a crashed worker, and SQL-looking filter values are data, not SQL.

Property tests (hypothesis) drive the real receiver view through Django's test client with a real key and the
real embedded ClickHouse: random bytes, truncated and byte-mutated real payloads, deep nesting, huge attribute
values, invalid UTF-8, ids of the wrong length, out-of-range timestamps, NaN/inf. After each property a valid
request must still be stored (the worker is alive and nothing is wedged). Gzip bombs are covered by
tests/ingestion/test_otlp_limits.py (bounded inflate, 413); a slow large upload is tested here against a live
uvicorn.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django.test import Client

from benchmarks.ingest_throughput import export_request
from controlplane.apikeys import issue_key

pytestmark = pytest.mark.django_db(transaction=True)

PB = "application/x-protobuf"
JSON = "application/json"
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
REAL = export_request(3, seed=5)


@pytest.fixture
def key(project) -> str:  # type: ignore[no-untyped-def]
    return issue_key(project, ["ingest", "read"]).secret


def _post(body: bytes, key: str, content_type: str = PB, encoding: str | None = None) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    if encoding:
        headers["HTTP_CONTENT_ENCODING"] = encoding
    return Client().post("/v1/traces", data=body, content_type=content_type, **headers)


def _assert_not_5xx(response: Any, body: bytes) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:300], body[:200])
    assert response.status_code in (200, 400, 413, 415, 429), response.status_code


def _still_ingesting(project: Any, key: str) -> None:
    from tests.ingestion.test_otlp_support import count_spans

    before = count_spans(project.tenant_id)
    assert _post(export_request(2), key).status_code == 200
    assert count_spans(project.tenant_id) == before + 2


def _json_request(spans: list[dict[str, Any]]) -> bytes:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []},
                                          "scopeSpans": [{"scope": {"name": "fuzz"}, "spans": spans}]}]}).encode()


def _span(**fields: Any) -> dict[str, Any]:
    span = {"traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "chat fuzz", "kind": 3,
            "startTimeUnixNano": str(time.time_ns() - 10**9), "endTimeUnixNano": str(time.time_ns()),
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]}
    span.update(fields)
    return span


@FUZZ
@given(body=st.binary(max_size=4096), content_type=st.sampled_from([PB, JSON]))
def test_random_bytes(project, key, body: bytes, content_type: str) -> None:
    _assert_not_5xx(_post(body, key, content_type), body)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(REAL)))
def test_truncated_real_payload(project, key, cut: int) -> None:
    body = REAL[:cut]
    _assert_not_5xx(_post(body, key), body)
    _assert_not_5xx(_post(gzip.compress(body), key, encoding="gzip"), body)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(min_value=0, max_value=len(REAL) - 1), st.integers(0, 255)),
                      min_size=1, max_size=20))
def test_mutated_real_payload(project, key, edits: list[tuple[int, int]]) -> None:
    body = bytearray(REAL)
    for at, value in edits:
        body[at] = value
    _assert_not_5xx(_post(bytes(body), key), bytes(body))


def test_fuzzed_server_still_ingests(project, key) -> None:
    for body in (os.urandom(2000), REAL[: len(REAL) // 2], b"\x0a\xff\xff\xff\xff\x0f" + os.urandom(64)):
        _assert_not_5xx(_post(body, key), body)
    _still_ingesting(project, key)


_IDS = st.one_of(st.text(max_size=70), st.binary(max_size=40).map(bytes.hex), st.just(""), st.just("0" * 32),
                 st.integers().map(str), st.none())
_TIMES = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), st.text(max_size=30), st.none(),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr))
_VALUES = st.one_of(
    st.text(max_size=200).map(lambda s: {"stringValue": s}),
    st.sampled_from(["NaN", "Infinity", "-Infinity", 1e308, -1e308]).map(lambda x: {"doubleValue": x}),
    st.integers(min_value=-(2**70), max_value=2**70).map(lambda i: {"intValue": str(i)}),
    st.just({"stringValue": "x" * 300_000}),
    st.just({"arrayValue": {"values": [{"stringValue": "a"}] * 1000}}),
    st.just({}),
    st.text(max_size=10),
)


@FUZZ
@given(trace=_IDS, span=_IDS, start=_TIMES, end=_TIMES, value=_VALUES)
def test_json_fields_of_the_wrong_shape(project, key, trace, span, start, end, value) -> None:
    fields = {"traceId": trace, "spanId": span, "startTimeUnixNano": start, "endTimeUnixNano": end,
              "attributes": [{"key": "gen_ai.usage.input_tokens", "value": value},
                             {"key": "gen_ai.request.temperature", "value": value}]}
    body = _json_request([_span(**{k: v for k, v in fields.items() if v is not None})])
    _assert_not_5xx(_post(body, key, JSON), body)


@pytest.mark.parametrize("depth", [50, 200, 1000, 100_000])
def test_deep_nesting(project, key, depth: int) -> None:
    nested_json = ("[" * depth + "]" * depth).encode()
    _assert_not_5xx(_post(nested_json, key, JSON), nested_json)
    levels = min(depth, 5000)  # kvlist inside kvlist, written as text (json.dumps itself would recurse)
    value = '{"kvlistValue":{"values":[{"key":"k","value":' * levels + '{"stringValue":"leaf"}' + "}]}}" * levels
    template = _json_request([_span(attributes=[{"key": "deep", "value": {"stringValue": "HOLE"}}])]).decode()
    body = template.replace('{"stringValue": "HOLE"}', value).encode()
    assert body != template.encode()
    _assert_not_5xx(_post(body, key, JSON), body)
    # protobuf: a length-delimited field nested far beyond the parser's recursion limit
    blob = b""
    for _ in range(min(depth, 5000)):
        blob = b"\x0a" + _varint(len(blob)) + blob
    _assert_not_5xx(_post(blob, key), blob)
    _still_ingesting(project, key)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_invalid_utf8_nan_and_out_of_range_in_protobuf(project, key) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from tests.ingestion.test_otlp_support import count_spans

    msg = ExportTraceServiceRequest.FromString(export_request(4, seed=9))
    spans = msg.resource_spans[0].scope_spans[0].spans
    spans[0].name = "MARKER_AAAA"  # replaced by invalid UTF-8 on the wire below
    spans[1].attributes.add(key="gen_ai.request.temperature").value.double_value = float("nan")
    spans[1].attributes.add(key="gen_ai.request.top_p").value.double_value = float("inf")
    spans[2].start_time_unix_nano = 2**64 - 1
    spans[2].end_time_unix_nano = 0
    spans[3].trace_id = b"\x01" * 5  # wrong length
    body = msg.SerializeToString().replace(b"MARKER_AAAA", b"\xff\xfe\xc3\x28MARKER")
    response = _post(body, key)
    _assert_not_5xx(response, body)
    if response.status_code == 200:  # partial success: whatever was accepted is stored, the rest reported
        assert count_spans(project.tenant_id) <= 4
    _still_ingesting(project, key)


# --- slow large upload against a live server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def live_keel() -> Iterator[tuple[str, int]]:
    import uvicorn

    from django.core.asgi import get_asgi_application

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(get_asgi_application(), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield "127.0.0.1", port
    server.should_exit = True
    thread.join(10)


@pytest.mark.slow
def test_slow_large_upload_is_refused_or_abandoned_without_a_5xx(live_keel, project, key) -> None:
    """A client announcing 64 MiB and trickling bytes, then vanishing; another client trickling a whole small
    body. Neither may produce a 5xx or wedge the server."""
    host, port = live_keel
    head = (f"POST /v1/traces HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {PB}\r\nContent-Length: {64 * 1024 * 1024}\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=10) as big:
        big.sendall(head)
        for _ in range(10):
            try:
                big.sendall(os.urandom(1024))
            except OSError:
                break  # the server refused the announced size early: fine
            time.sleep(0.05)
        big.settimeout(0.5)
        try:
            answer = big.recv(200)
        except OSError:
            answer = b""
        assert not answer.startswith(b"HTTP/1.1 5"), answer
    body = export_request(2)
    head = (f"POST /v1/traces HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {PB}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=30) as slow:
        slow.sendall(head)
        for i in range(0, len(body), max(1, len(body) // 20)):
            slow.sendall(body[i:i + max(1, len(body) // 20)])
            time.sleep(0.05)
        answer = slow.recv(200)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    _still_ingesting(project, key)


# --- SQL injection in every read filter ----------------------------------------------------------------------

INJECTIONS = [
    "' OR 1=1 --",
    "x') OR ('1'='1",
    "'; DROP TABLE otel_traces; --",
    "\\' UNION SELECT ProjectId, TraceId FROM llm_calls --",
    "{p:String}",
    "1; SELECT * FROM system.tables",
    "` OR 1 --",
    "\" OR \"\"=\"",
    "%27%20OR%201%3D1",
    "\x00' OR 1=1",
]


@pytest.fixture
def two_tenants(ch, project, key, django_user_model):  # type: ignore[no-untyped-def]
    """Project (with rows whose ServiceName/Route ARE injection strings) and another project with a marker row."""
    import uuid
    from datetime import UTC, datetime

    from controlplane.models import Membership, Project

    other = Project.objects.create(slug=f"sqli-other-{uuid.uuid4().hex[:6]}", name="other")
    columns = ["ProjectId", "Timestamp", "TraceId", "SpanId", "ServiceName", "Route", "Provider", "RequestModel",
               "ResponseModel", "Operation", "SpanName", "StatusCode", "IsError", "DurationMs", "InputTokens",
               "OutputTokens", "TotalCost", "Priced", "CostSource"]
    now = datetime.now(UTC)
    rows = [[project.tenant_id, now, uuid.uuid4().hex, uuid.uuid4().hex[:16], s, s, "openai", s, s, "chat", "chat",
             "Ok", 0, 10.0, 1, 1, 0.001, 1, "client"] for s in INJECTIONS]
    rows.append([other.tenant_id, now, uuid.uuid4().hex, uuid.uuid4().hex[:16], "OTHER-TENANT-MARKER", "r",
                 "openai", "m", "m", "chat", "chat", "Ok", 0, 10.0, 1, 1, 0.001, 1, "client"])
    ch.insert("llm_calls", rows, column_names=columns)
    user = django_user_model.objects.create_user(f"sqli-{uuid.uuid4().hex[:6]}", password="pw-123456789-x")
    Membership.objects.create(user=user, project=project, role="admin")
    return project, other, user


def test_sql_injection_in_calls_filters_is_data(two_tenants, key, ch) -> None:
    from rest_framework.test import APIClient

    _project, _other, _user = two_tenants
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    for value in INJECTIONS:
        for name in ("service", "route", "provider", "model", "cursor", "trace_id", "status", "since", "limit"):
            response = client.get("/api/v1/calls", {name: value})
            assert response.status_code in (200, 400), (name, value, response.status_code, response.content[:300])
            body = response.content.decode()
            assert "OTHER-TENANT-MARKER" not in body
            if response.status_code == 200 and name in ("service", "route"):
                # bound, not escaped away: the row whose value IS the string matches it exactly, and only it
                results = response.json()["results"]
                assert [r[name] for r in results] == [value], (name, value, results)
    for value in INJECTIONS:
        response = client.get("/api/v1/usage", {"group_by": value, "since": value})
        assert response.status_code == 400, (value, response.status_code)
    usage = client.get("/api/v1/usage", {"group_by": "service"}).json()
    assert sorted(g["key"] for g in usage["results"]) == sorted(INJECTIONS)
    assert ch.query("SELECT count() FROM otel_traces").result_rows[0][0] >= 0  # the tables are all still there


def test_sql_injection_in_alert_and_dashboard_filters_is_harmless(two_tenants, key) -> None:
    from rest_framework.test import APIClient

    project, other, user = two_tenants
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    pages = Client()
    pages.force_login(user)
    for value in INJECTIONS:
        for name in ("state", "severity", "detector", "route", "cursor"):
            response = api.get("/api/v1/alerts", {name: value})
            assert response.status_code in (200, 400, 404), (name, value, response.status_code)
        for path in ("/", "/cost/", "/cost/users/", "/latency/", "/traces/", "/versions/", "/alerts/", "/coverage/",
                     "/routes/"):
            params = {"project": project.slug, "range": value, "from": value, "to": value,
                      **dict.fromkeys(("environment", "service", "route", "provider", "model", "cost_center"), value)}
            response = pages.get(path, params)
            assert response.status_code in (200, 400), (path, value, response.status_code)
            assert "OTHER-TENANT-MARKER" not in response.content.decode()
        response = pages.get("/", {"project": value})
        assert response.status_code in (200, 302, 403, 404), (value, response.status_code)
    assert other.slug not in pages.get("/traces/", {"project": project.slug, "service": "' OR 1=1 --"}).content.decode()
