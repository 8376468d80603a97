"""Support for the OTLP tests (no tests here): request builders and queries over what was stored."""

from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingestion.clickhouse.client import get_client


def genai_request(n: int = 2, service: str = "svc", spoof_project: str | None = None,
                  content: str = "hello from bob@example.com") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    if spoof_project is not None:
        rs.resource.attributes.add(key="keel.project_id").value.string_value = spoof_project
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai_v2"
    ss.scope.version = "2.4b0"
    now = time.time_ns()
    for _ in range(n):
        span = ss.spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="chat gpt-4o-mini", kind=3,
                            start_time_unix_nano=now - 2_000_000_000, end_time_unix_nano=now - 1_000_000_000)
        a = span.attributes
        a.add(key="gen_ai.operation.name").value.string_value = "chat"
        a.add(key="gen_ai.provider.name").value.string_value = "openai"
        a.add(key="gen_ai.request.model").value.string_value = "gpt-4o-mini"
        a.add(key="gen_ai.usage.input_tokens").value.int_value = 100
        a.add(key="gen_ai.usage.output_tokens").value.int_value = 20
        a.add(key="gen_ai.request.temperature").value.double_value = 0.5
        a.add(key="gen_ai.request.stream").value.bool_value = True
        a.add(key="gen_ai.response.finish_reasons").value.array_value.values.add().string_value = "stop"
        a.add(key="gen_ai.input.messages").value.string_value = content
    return req


def span_keys(req: ExportTraceServiceRequest) -> list[tuple[str, str]]:
    return [(s.trace_id.hex(), s.span_id.hex()) for rs in req.resource_spans for ss in rs.scope_spans
            for s in ss.spans]


def stored_spans(tenant: str) -> list[tuple[Any, ...]]:
    return get_client().query(
        "SELECT TraceId, SpanId, ServiceName, SpanKind, StatusCode, SpanAttributes, ResourceAttributes "
        "FROM otel_traces WHERE ProjectId = {p:String} ORDER BY TraceId, SpanId",
        parameters={"p": tenant},
    ).result_rows


def count_spans(tenant: str) -> int:
    return int(get_client().query("SELECT count() FROM otel_traces WHERE ProjectId = {p:String}",
                                  parameters={"p": tenant}).result_rows[0][0])


def count_calls(tenant: str) -> int:
    """llm_calls rows without FINAL: a duplicate would show up here (and in the rollups) until a merge."""
    return int(get_client().query("SELECT count() FROM llm_calls WHERE ProjectId = {p:String}",
                                  parameters={"p": tenant}).result_rows[0][0])


def rollup_calls(tenant: str) -> int:
    return int(get_client().query("SELECT sum(Calls) FROM rollups_1m WHERE ProjectId = {p:String}",
                                  parameters={"p": tenant}).result_rows[0][0] or 0)


def logs_request(trace_id: bytes, span_id: bytes, content: str = "my card is 4111 1111 1111 1111",
                 spoof_project: str | None = None) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "svc"
    if spoof_project is not None:
        rl.resource.attributes.add(key="keel.project_id").value.string_value = spoof_project
    sl = rl.scope_logs.add()
    sl.scope.name = "opentelemetry.instrumentation.openai_v2"
    now = time.time_ns()
    rec = sl.log_records.add(time_unix_nano=now, observed_time_unix_nano=now, severity_number=9,
                             trace_id=trace_id, span_id=span_id, event_name="gen_ai.user.message")
    rec.attributes.add(key="gen_ai.provider.name").value.string_value = "openai"
    kv = rec.body.kvlist_value.values.add(key="content")
    kv.value.string_value = content
    ev = sl.log_records.add(time_unix_nano=now, trace_id=trace_id, span_id=span_id,
                            event_name="gen_ai.evaluation.result")
    ev.attributes.add(key="gen_ai.evaluation.name").value.string_value = "relevance"
    ev.attributes.add(key="gen_ai.evaluation.score.value").value.double_value = 0.83
    ev.attributes.add(key="gen_ai.evaluation.explanation").value.string_value = "mentions jane@example.org"
    return req
