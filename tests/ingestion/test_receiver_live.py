"""The real OpenTelemetry Python SDK and its OTLP/HTTP exporters (protobuf and JSON) against a live Keel server.

The server is uvicorn serving Keel's ASGI application (the async view, as in production) on a free port in a
thread of this process, so it shares the test database and the embedded ClickHouse.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from asgiref.sync import SyncToAsync
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as ProtoSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from django.db import connections

from controlplane.apikeys import issue_key
from ingestion.clickhouse.client import ClickHouseUnavailable, get_client
from ingestion.writer import BatchWriter, set_writer
from tests.ingestion.test_otlp_support import count_calls, count_spans


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_keel() -> Iterator[str]:
    from django.core.asgi import get_asgi_application

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(get_asgi_application(), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    # The view's ORM calls ran on asgiref's shared sync thread: close its connection so the test database
    # can be dropped at the end of the session.
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(10)


def _send_genai_span(exporter: SpanExporter, service: str = "sdk-svc") -> tuple[str, str]:
    results: list[SpanExportResult] = []

    class Recording(SimpleSpanProcessor):
        def on_end(self, span: Any) -> None:
            results.append(exporter.export((span,)))

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(Recording(exporter))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2", "2.4b0")
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.provider.name", "openai")
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18")
        span.set_attribute("gen_ai.usage.input_tokens", 120)
        span.set_attribute("gen_ai.usage.output_tokens", 30)
        span.set_attribute("gen_ai.response.finish_reasons", ["stop"])
        span.set_attribute("keel.route", "support-bot")
        span.set_status(StatusCode.ERROR, "upstream 500")
        ctx = span.get_span_context()
    provider.shutdown()
    assert results == [SpanExportResult.SUCCESS]
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def _stored_call(tenant: str, trace_id: str, span_id: str) -> tuple[Any, ...]:
    rows = get_client().query(
        "SELECT ServiceName, RequestModel, InputTokens, OutputTokens, Route, StatusCode FROM llm_calls "
        "WHERE ProjectId = {p:String} AND TraceId = {t:String} AND SpanId = {s:String}",
        parameters={"p": tenant, "t": trace_id, "s": span_id},
    ).result_rows
    assert len(rows) == 1, rows
    return tuple(rows[0])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("exporter_kind", ["protobuf", "json"])
@pytest.mark.parametrize("style", ["base_url", "full_url", "prefixed_full_url"])
def test_real_sdk_exporters_store_spans(live_keel, project, monkeypatch, exporter_kind, style) -> None:
    key = issue_key(project, ["ingest"]).secret
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{key}")
    endpoint: str | None
    if style == "base_url":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", live_keel)
        endpoint = None
    elif style == "full_url":
        endpoint = f"{live_keel}/v1/traces"
    else:
        endpoint = f"{live_keel}/otlp/v1/traces"
    if exporter_kind == "protobuf":
        exporter: SpanExporter = ProtoSpanExporter(endpoint=endpoint, compression=Compression.Gzip)
    else:
        exporter = JsonSpanExporter(endpoint=endpoint)
    trace_id, span_id = _send_genai_span(exporter)
    assert count_spans(project.tenant_id) == 1
    assert _stored_call(project.tenant_id, trace_id, span_id) == (
        "sdk-svc", "gpt-4o-mini", 120, 30, "support-bot", "Error")


@pytest.mark.django_db(transaction=True)
def test_real_exporter_retries_after_503_and_the_span_is_stored_once(live_keel, project, settings) -> None:
    settings.KEEL_RETRY_AFTER_SECONDS = 1
    key = issue_key(project, ["ingest"]).secret
    calls = {"failed": 0}

    def flaky_client() -> Any:
        if calls["failed"] == 0:
            calls["failed"] += 1
            raise ClickHouseUnavailable("ClickHouse is restarting")
        return get_client()

    previous = set_writer(BatchWriter(client_factory=flaky_client))
    try:
        started = time.monotonic()
        trace_id, span_id = _send_genai_span(
            ProtoSpanExporter(endpoint=f"{live_keel}/v1/traces", headers={"Authorization": f"Bearer {key}"})
        )
        elapsed = time.monotonic() - started
    finally:
        set_writer(previous)
    assert calls["failed"] == 1
    assert elapsed >= 0.9  # it waited for Retry-After: 1 before the successful retry
    assert count_spans(project.tenant_id) == 1
    assert count_calls(project.tenant_id) == 1
    assert _stored_call(project.tenant_id, trace_id, span_id)[1] == "gpt-4o-mini"


@pytest.mark.django_db(transaction=True)
def test_real_exporter_with_a_read_key_fails_and_stores_nothing(live_keel, project) -> None:
    key = issue_key(project, ["read"]).secret
    exporter = ProtoSpanExporter(endpoint=f"{live_keel}/v1/traces", headers={"Authorization": f"Bearer {key}"})
    provider = TracerProvider()
    results: list[SpanExportResult] = []

    class Recording(SimpleSpanProcessor):
        def on_end(self, span: Any) -> None:
            results.append(exporter.export((span,)))

    provider.add_span_processor(Recording(exporter))
    with provider.get_tracer("t").start_as_current_span("x"):
        pass
    provider.shutdown()
    assert results == [SpanExportResult.FAILURE]
    assert count_spans(project.tenant_id) == 0
