"""POST /v1/logs: GenAI event records stored in the Collector-compatible otel_logs, linked to their span, redacted."""

from __future__ import annotations

import json
import os
import time

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from django.test import Client

from controlplane.apikeys import issue_key
from ingestion.clickhouse.client import get_client
from tests.ingestion.test_otlp_support import genai_request, logs_request

PB = "application/x-protobuf"


def _post(body: bytes, key: str, content_type: str = PB):  # type: ignore[no-untyped-def]
    return Client().generic("POST", "/v1/logs", body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {key}")


def _logs(tenant: str) -> list[tuple]:  # type: ignore[type-arg]
    return get_client().query(
        "SELECT TraceId, SpanId, EventName, Body, LogAttributes, ServiceName, SeverityNumber, ResourceAttributes "
        "FROM otel_logs WHERE ProjectId = {p:String} ORDER BY EventName",
        parameters={"p": tenant},
    ).result_rows


@pytest.mark.django_db
def test_genai_events_are_stored_linked_to_their_span_and_redacted(project) -> None:
    key = issue_key(project, ["ingest"]).secret
    spans = genai_request(1)
    span = spans.resource_spans[0].scope_spans[0].spans[0]
    assert Client().generic("POST", "/v1/traces", spans.SerializeToString(), content_type=PB,
                            HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    response = _post(logs_request(span.trace_id, span.span_id).SerializeToString(), key)
    assert response.status_code == 200, response.content
    assert not ExportLogsServiceResponse.FromString(response.content).HasField("partial_success")
    rows = _logs(project.tenant_id)
    assert [r[2] for r in rows] == ["gen_ai.evaluation.result", "gen_ai.user.message"]
    evaluation, message = rows
    assert {r[0] for r in rows} == {span.trace_id.hex()} and {r[1] for r in rows} == {span.span_id.hex()}
    assert json.loads(message[3]) == {"content": "my card is [CARD]"}
    assert message[6] == 9 and message[5] == "svc"
    assert evaluation[4]["gen_ai.evaluation.name"] == "relevance"
    assert evaluation[4]["gen_ai.evaluation.score.value"] == "0.83"
    assert evaluation[4]["gen_ai.evaluation.explanation"] == "mentions [EMAIL]"
    # the span the events belong to is there, joined on TraceId/SpanId
    joined = get_client().query(
        "SELECT count() FROM otel_logs AS l INNER JOIN otel_traces AS t "
        "ON l.TraceId = t.TraceId AND l.SpanId = t.SpanId "
        "WHERE l.ProjectId = {p:String} AND t.ProjectId = {p:String}",
        parameters={"p": project.tenant_id},
    ).result_rows[0][0]
    assert joined == 2


@pytest.mark.django_db
def test_logs_json_retry_and_tenant_spoofing(project) -> None:
    from controlplane.models import Project

    victim = Project.objects.create(slug=f"v-{os.urandom(3).hex()}", name="Victim")
    key = issue_key(project, ["ingest"]).secret
    trace_hex, span_hex = os.urandom(16).hex().upper(), os.urandom(8).hex()
    now = time.time_ns()
    body = json.dumps({"resourceLogs": [{
        "resource": {"attributes": [{"key": "keel.project_id", "value": {"stringValue": victim.tenant_id}}]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": str(now), "observedTimeUnixNano": now,
            "traceId": trace_hex, "spanId": span_hex, "severityNumber": 9, "eventName": "gen_ai.choice",
            "body": {"kvlistValue": {"values": [{"key": "message", "value": {"stringValue": "ok"}}]}},
        }]}],
    }]}).encode()
    for _ in range(2):
        response = _post(body, key, "application/json")
        assert response.status_code == 200, response.content
        assert json.loads(response.content) == {}
    rows = _logs(project.tenant_id)
    assert len(rows) == 1  # the retry was deduplicated
    assert rows[0][0] == trace_hex.lower()
    assert rows[0][7]["keel.project_id"] == project.tenant_id
    assert _logs(victim.tenant_id) == []


@pytest.mark.django_db
def test_log_records_with_bad_ids_are_refused_as_partial_success(project) -> None:
    key = issue_key(project, ["ingest"]).secret
    req = logs_request(b"\x01" * 16, b"\x02" * 8)
    req.resource_logs[0].scope_logs[0].log_records[0].span_id = b"\x01\x02"
    response = _post(req.SerializeToString(), key)
    assert response.status_code == 200
    partial = ExportLogsServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_log_records == 1
    assert "span_id" in partial.error_message
    assert len(_logs(project.tenant_id)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, b"x", 401),
        ({"HTTP_AUTHORIZATION": "Bearer keel_x_y"}, b"x", 401),
        ({"content_type": "text/plain"}, b"x", 415),
        ({}, b"\xff\xff", 400),
    ],
)
def test_logs_status_codes(project, headers, body, status) -> None:
    key = issue_key(project, ["ingest"]).secret
    extra = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if status != 401 else {}
    extra.update({k: v for k, v in headers.items() if k.startswith("HTTP_")})
    response = Client().generic("POST", "/otlp/v1/logs", body, content_type=headers.get("content_type", PB), **extra)
    assert response.status_code == status
    assert _logs(project.tenant_id) == []


@pytest.mark.django_db
def test_read_scoped_key_cannot_send_logs(project) -> None:
    key = issue_key(project, ["read"]).secret
    assert _post(logs_request(b"\x01" * 16, b"\x02" * 8).SerializeToString(), key).status_code == 403
