"""The OTLP/HTTP receiver through Django's URL routing and the real async view, into real (embedded) ClickHouse."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
import zlib

import pytest
from google.protobuf.internal.encoder import _VarintBytes
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from django.test import Client

from controlplane.apikeys import issue_key
from ingestion import ratelimit
from ingestion.clickhouse.client import ClickHouseUnavailable, get_client
from ingestion.writer import BatchWriter, set_writer
from tests.ingestion.test_otlp_support import (
    count_calls,
    count_spans,
    genai_request,
    rollup_calls,
    span_keys,
    stored_spans,
)
from tests.support import db_thread

PB = "application/x-protobuf"


@pytest.fixture
def key(project):  # type: ignore[no-untyped-def]
    return issue_key(project, ["ingest"]).secret


@pytest.fixture
def client() -> Client:
    return Client()


def post(client: Client, body: bytes, key: str | None, path: str = "/v1/traces", content_type: str = PB,
         **headers: str):  # type: ignore[no-untyped-def]
    extra = {f"HTTP_{k.upper()}": v for k, v in headers.items()}
    if key is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client.generic("POST", path, body, content_type=content_type, **extra)


def status_message(response) -> str:  # type: ignore[no-untyped-def]
    if response["Content-Type"].startswith("application/json"):
        return json.loads(response.content)["message"]
    return Status.FromString(response.content).message


# --- success paths ------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/v1/traces", "/otlp/v1/traces", "/v1/traces/"])
def test_protobuf_export_is_stored_and_normalised(client, project, key, path) -> None:
    req = genai_request(3)
    response = post(client, req.SerializeToString(), key, path)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == PB
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert not parsed.HasField("partial_success")
    rows = stored_spans(project.tenant_id)
    assert sorted((r[0], r[1]) for r in rows) == sorted(span_keys(req))
    _trace, _span, service, kind, status, attrs, resource = rows[0]
    assert (service, kind, status) == ("svc", "Client", "Unset")
    assert attrs["gen_ai.usage.input_tokens"] == "100"
    assert attrs["gen_ai.request.temperature"] == "0.5"
    assert attrs["gen_ai.request.stream"] == "true"
    assert attrs["gen_ai.response.finish_reasons"] == '["stop"]'
    assert attrs["gen_ai.input.messages"] == "hello from [EMAIL]"  # redacted before storage
    assert resource["keel.project_id"] == project.tenant_id
    assert count_calls(project.tenant_id) == 3


@pytest.mark.django_db
def test_json_export_with_uppercase_hex_ids_and_string_ints(client, project, key) -> None:
    trace_hex, span_hex = os.urandom(16).hex().upper(), os.urandom(8).hex().upper()
    now = time.time_ns()
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
            "someFutureField": {"x": 1},
            "scopeSpans": [{
                "scope": {"name": "manual"},
                "spans": [{
                    "traceId": trace_hex, "spanId": span_hex, "parentSpanId": "", "name": "chat gpt-4o",
                    "kind": 3, "startTimeUnixNano": str(now - 10**9), "endTimeUnixNano": now,
                    "flags": 256, "status": {"code": 2, "message": "boom"},
                    "attributes": [
                        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
                        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 7}},
                    ],
                }],
            }],
        }]
    }
    response = post(client, json.dumps(body).encode(), key, content_type="application/json; charset=utf-8")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {}
    rows = stored_spans(project.tenant_id)
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (trace_hex.lower(), span_hex.lower(), "json-svc", "Client", "Error")]
    assert rows[0][5]["gen_ai.usage.input_tokens"] == "42"
    assert rows[0][5]["gen_ai.usage.output_tokens"] == "7"


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
def test_compressed_bodies(client, project, key, encoding) -> None:
    raw = genai_request(2).SerializeToString()
    if encoding == "gzip":
        body = gzip.compress(raw)
    elif encoding == "deflate":
        body = zlib.compress(raw)
    else:
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body = c.compress(raw) + c.flush()
    response = post(client, body, key, content_encoding=encoding.replace("-raw", ""))
    assert response.status_code == 200, response.content
    assert count_spans(project.tenant_id) == 2


@pytest.mark.django_db
def test_partial_success_refuses_bad_ids_and_stores_the_rest(client, project, key) -> None:
    req = genai_request(3)
    spans = req.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x01" * 15
    spans[1].span_id = b""
    response = post(client, req.SerializeToString(), key)
    assert response.status_code == 200
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 2
    assert "trace_id must be 16 bytes" in parsed.partial_success.error_message
    assert "span_id must be 8 bytes" in parsed.partial_success.error_message
    kept = (spans[2].trace_id.hex(), spans[2].span_id.hex())
    assert [(r[0], r[1]) for r in stored_spans(project.tenant_id)] == [kept]


@pytest.mark.django_db
def test_json_partial_success_for_non_hex_id(client, project, key) -> None:
    now = time.time_ns()
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "zz" * 16, "spanId": "ab" * 8, "name": "x", "startTimeUnixNano": str(now),
         "endTimeUnixNano": str(now)},
        {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "y", "startTimeUnixNano": str(now),
         "endTimeUnixNano": str(now)},
    ]}]}]}
    response = post(client, json.dumps(body).encode(), key, content_type="application/json")
    assert response.status_code == 200
    assert json.loads(response.content)["partialSuccess"]["rejectedSpans"] == "1"
    assert [(r[0], r[1]) for r in stored_spans(project.tenant_id)] == [("ab" * 16, "cd" * 8)]


@pytest.mark.django_db
def test_empty_request_is_success(client, key) -> None:
    response = client.generic("POST", "/v1/traces", b"", CONTENT_TYPE=PB, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()


# --- tenancy and idempotency --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_client_cannot_move_spans_into_another_project(client, project, key, django_user_model) -> None:
    from controlplane.models import Project

    victim = Project.objects.create(slug=f"victim-{os.urandom(3).hex()}", name="Victim")
    req = genai_request(2, spoof_project=victim.tenant_id)
    # also try the wrapper's own field number (100001) appended to the payload
    body = req.SerializeToString() + _VarintBytes((100001 << 3) | 2) + _VarintBytes(32) + victim.tenant_id.encode()
    response = post(client, body, key)
    assert response.status_code == 200, response.content
    assert count_spans(victim.tenant_id) == 0
    rows = stored_spans(project.tenant_id)
    assert len(rows) == 2
    assert all(r[6]["keel.project_id"] == project.tenant_id for r in rows)
    assert count_calls(victim.tenant_id) == 0


@pytest.mark.django_db
def test_retried_request_is_stored_once(client, project, key) -> None:
    body = genai_request(4).SerializeToString()
    assert post(client, body, key).status_code == 200
    assert post(client, body, key).status_code == 200
    assert count_spans(project.tenant_id) == 4
    assert count_calls(project.tenant_id) == 4
    assert rollup_calls(project.tenant_id) == 4


@pytest.mark.django_db
def test_same_span_in_a_different_request_counts_once(client, project, key) -> None:
    first = genai_request(2)
    second = genai_request(1, service="other")
    again = second.resource_spans[0].scope_spans[0].spans.add()
    again.CopyFrom(first.resource_spans[0].scope_spans[0].spans[0])
    dup_in_request = second.resource_spans[0].scope_spans[0].spans.add()
    dup_in_request.CopyFrom(second.resource_spans[0].scope_spans[0].spans[0])
    assert post(client, first.SerializeToString(), key).status_code == 200
    assert post(client, second.SerializeToString(), key).status_code == 200
    assert count_spans(project.tenant_id) == 3
    assert count_calls(project.tenant_id) == 3
    assert rollup_calls(project.tenant_id) == 3


@pytest.mark.django_db
def test_same_span_ids_in_two_projects_are_both_stored(client, project, key) -> None:
    from controlplane.models import Project

    other = Project.objects.create(slug=f"o-{os.urandom(3).hex()}", name="Other")
    other_key = issue_key(other, ["ingest"]).secret
    body = genai_request(2).SerializeToString()
    assert post(client, body, key).status_code == 200
    assert post(client, body, other_key).status_code == 200
    assert count_spans(project.tenant_id) == 2
    assert count_spans(other.tenant_id) == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_requests_share_one_write(project, key) -> None:
    body = genai_request(3).SerializeToString()
    codes: list[int] = []

    def send() -> None:
        codes.append(post(Client(), body, key).status_code)

    threads = [db_thread(send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 4
    assert count_spans(project.tenant_id) == 3
    assert count_calls(project.tenant_id) == 3


# --- error paths ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_missing_and_invalid_key_are_401(client, project) -> None:
    body = genai_request(1).SerializeToString()
    r1 = post(client, body, None)
    assert r1.status_code == 401
    assert "Bearer" in status_message(r1)
    r2 = post(client, body, "keel_deadbeef0000_notarealsecretnotarealsecret")
    assert r2.status_code == 401
    assert Status.FromString(r2.content).code == 16
    r3 = post(client, b"{}", None, content_type="application/json")
    assert r3.status_code == 401
    assert r3["Content-Type"] == "application/json"
    assert count_spans(project.tenant_id) == 0


@pytest.mark.django_db
def test_key_without_ingest_scope_is_403(client, project) -> None:
    read_key = issue_key(project, ["read"]).secret
    admin_key = issue_key(project, ["admin"]).secret
    body = genai_request(1).SerializeToString()
    for k in (read_key, admin_key):
        response = post(client, body, k)
        assert response.status_code == 403
        assert "ingest" in status_message(response)
    assert count_spans(project.tenant_id) == 0


@pytest.mark.django_db
def test_revoked_key_is_401(client, project) -> None:
    from controlplane.apikeys import revoke_key

    issued = issue_key(project, ["ingest"])
    revoke_key(issued.api_key)
    assert post(client, genai_request(1).SerializeToString(), issued.secret).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("content_type", ["text/plain", "application/grpc", ""])
def test_other_content_types_are_415(client, key, content_type) -> None:
    response = post(client, genai_request(1).SerializeToString(), key, content_type=content_type)
    assert response.status_code == 415
    assert "application/x-protobuf" in status_message(response)


@pytest.mark.django_db
def test_unknown_content_encoding_is_415(client, key) -> None:
    response = post(client, genai_request(1).SerializeToString(), key, content_encoding="br")
    assert response.status_code == 415


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"\xff\xff\xff\xff", PB, "not a valid OTLP protobuf"),
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}', "application/json", "not a valid OTLP"),
        (b'{"resourceSpans": {"x": 1}}', "application/json", "must be a JSON array"),
    ],
)
def test_malformed_bodies_are_400_with_a_message(client, project, key, body, content_type, expected) -> None:
    response = post(client, body, key, content_type=content_type)
    assert response.status_code == 400
    assert response["Content-Type"] == content_type
    assert expected in status_message(response)
    assert count_spans(project.tenant_id) == 0


@pytest.mark.django_db
def test_corrupt_gzip_is_400(client, key) -> None:
    body = gzip.compress(genai_request(1).SerializeToString())[:-12]
    response = post(client, body, key, content_encoding="gzip")
    assert response.status_code == 400
    assert "gzip" in status_message(response)


@pytest.mark.django_db
def test_body_over_limit_after_decompression_is_413(client, project, key, settings) -> None:
    settings.KEEL_MAX_BODY_BYTES = 10_000
    raw = genai_request(40, content="x" * 500).SerializeToString()
    assert len(raw) > 10_000
    response = post(client, gzip.compress(raw), key, content_encoding="gzip")
    assert len(gzip.compress(raw)) < 10_000
    assert response.status_code == 413
    assert "10000 bytes" in status_message(response)
    assert post(client, raw, key).status_code == 413
    assert count_spans(project.tenant_id) == 0


@pytest.mark.django_db
def test_rate_limit_is_429_with_retry_after(client, project, key) -> None:
    project.ingest_rate_limit = 2
    project.save()
    ratelimit.clear_cache()
    # A request larger than one second's worth passes on a full bucket and leaves a debt of 48 spans (24 s).
    assert post(client, genai_request(50).SerializeToString(), key).status_code == 200
    response = post(client, genai_request(1).SerializeToString(), key)
    assert response.status_code == 429
    assert 15 <= int(response["Retry-After"]) <= 25
    assert "rate limit of 2 records/s" in status_message(response)
    assert count_spans(project.tenant_id) == 50


def test_token_bucket_refills_at_the_configured_rate() -> None:
    now = [100.0]
    limiter = ratelimit.RateLimiter(clock=lambda: now[0])
    assert limiter.acquire("a", rate=10, records=10) == 0
    assert limiter.acquire("a", rate=10, records=1) == pytest.approx(0.1)
    assert limiter.acquire("b", rate=10, records=1) == 0  # buckets are per project
    now[0] += 0.5
    assert limiter.acquire("a", rate=10, records=5) == 0
    assert limiter.acquire("a", rate=10, records=1) > 0
    assert limiter.acquire("a", rate=0, records=10**6) == 0  # 0 = unlimited


class _BrokenClient:
    """A ClickHouse that is down: every statement fails the way an unreachable server does."""

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise ClickHouseUnavailable("connection refused")

        return fail


@pytest.mark.django_db
def test_clickhouse_outage_is_503_with_retry_after_and_nothing_stored(client, project, key) -> None:
    previous = set_writer(BatchWriter(client_factory=_BrokenClient))
    try:
        response = post(client, genai_request(2).SerializeToString(), key)
    finally:
        set_writer(previous)
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert "retry later" in status_message(response)
    assert count_spans(project.tenant_id) == 0
    assert count_calls(project.tenant_id) == 0


@pytest.mark.django_db
def test_failing_landing_insert_is_503_and_nothing_half_stored(client, project, key) -> None:
    """The real client, but the insert itself fails inside ClickHouse (wrong message schema)."""

    class Failing:
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            real = getattr(get_client(), name)
            if name != "raw_insert":
                return real

            def raw_insert(table, columns, insert_block, fmt, settings):  # type: ignore[no-untyped-def]
                return real(table, columns, insert_block=insert_block, fmt=fmt,
                            settings={**settings, "format_schema_message_name": "NoSuchMessage"})

            return raw_insert

    previous = set_writer(BatchWriter(client_factory=Failing))
    try:
        response = post(client, genai_request(2).SerializeToString(), key)
    finally:
        set_writer(previous)
    assert response.status_code == 503
    assert count_spans(project.tenant_id) == 0


@pytest.mark.django_db(transaction=True)
def test_saturated_writer_is_503(client, project, key) -> None:
    release = threading.Event()

    class Slow:
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            release.wait(10)
            return getattr(get_client(), name)

    writer = BatchWriter(client_factory=Slow, max_queued_records=3)
    previous = set_writer(writer)
    try:
        first = db_thread(lambda: post(Client(), genai_request(3).SerializeToString(), key))
        first.start()
        deadline = time.monotonic() + 5
        while writer._queued_records < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        response = post(client, genai_request(2).SerializeToString(), key)
        release.set()
        first.join()
    finally:
        set_writer(previous)
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert "saturated" in status_message(response)
    assert count_spans(project.tenant_id) == 3


@pytest.mark.django_db
def test_get_is_not_allowed(client) -> None:
    assert client.get("/v1/traces").status_code == 405


@pytest.mark.django_db
def test_values_events_and_links_are_stored_the_collector_way(client, project, key) -> None:
    req = genai_request(1)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    a = span.attributes
    a.add(key="b64").value.bytes_value = b"\x00\x01"
    kv = a.add(key="kv").value.kvlist_value
    kv.values.add(key="n").value.int_value = 3
    kv.values.add(key="s").value.string_value = 'q"uote'
    arr = a.add(key="nested").value.array_value
    arr.values.add().bool_value = False
    arr.values.add().array_value.values.add().string_value = "too deep"
    ev = span.events.add(time_unix_nano=span.start_time_unix_nano + 5_000, name="gen_ai.user.message")
    ev.attributes.add(key="content").value.string_value = "ping me at ann@example.com"
    ev.attributes.add(key="role").value.string_value = "user"
    other = span.events.add(time_unix_nano=span.start_time_unix_nano + 6_000, name="exception")
    other.attributes.add(key="exception.type").value.string_value = "RateLimitError"
    link = span.links.add(trace_id=b"\x0a" * 16, span_id=b"\x0b" * 8, trace_state="k=v")
    link.attributes.add(key="why").value.string_value = "retry of"
    span.kind = 2
    span.status.code = 1
    assert post(client, req.SerializeToString(), key).status_code == 200
    row = get_client().query(
        "SELECT SpanKind, StatusCode, SpanAttributes, Events.Name, Events.Attributes, Events.Timestamp, "
        "Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes, Timestamp, Duration "
        "FROM otel_traces WHERE ProjectId = {p:String}",
        parameters={"p": project.tenant_id},
    ).result_rows[0]
    kind, status, attrs, names, event_attrs, event_ts, link_traces, link_spans, link_states, link_attrs, ts, dur = row
    assert (kind, status) == ("Server", "Ok")
    assert attrs["b64"] == "AAE="
    assert json.loads(attrs["kv"]) == {"n": 3, "s": 'q"uote'}
    assert attrs["nested"] == "[false,null]"  # values nested two levels deep are not decoded (documented)
    assert names == ["gen_ai.user.message", "exception"]
    assert event_attrs == [{"content": "ping me at [EMAIL]", "role": "user"}, {"exception.type": "RateLimitError"}]
    assert event_ts[1] > event_ts[0] >= ts
    assert (link_traces, link_spans, link_states) == (["0a" * 16], ["0b" * 8], ["k=v"])
    assert link_attrs == [{"why": "retry of"}]
    assert dur == 1_000_000_000
