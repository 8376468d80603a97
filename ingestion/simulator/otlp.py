"""Turn simulated calls into real OpenTelemetry spans and ship them with the SDK's OTLP/HTTP exporter.

Spans carry explicit start/end timestamps (history backfill uses past times). Export is synchronous, in
batches, so the simulator feels back-pressure and can report a rejected key or a dead URL in one line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import requests
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from ingestion.simulator.catalog import SERVICES
from ingestion.simulator.traffic import Call

SCOPE = "keel.simulator"
SCOPE_VERSION = "1.0"
BATCH = 1000


class SimulatorError(Exception):
    """A problem reported to the user as one line (bad URL, rejected key, Keel refusing data)."""


def traces_endpoint(url: str) -> str:
    return url.rstrip("/") + "/v1/traces"


def probe(url: str, key: str, timeout: float = 10.0) -> None:
    """Send one empty OTLP request; raise SimulatorError saying what is wrong with the URL or key."""
    endpoint = traces_endpoint(url)
    try:
        response = requests.post(
            endpoint,
            data=ExportTraceServiceRequest().SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {key}"},
            timeout=timeout,
        )
    except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL):
        raise SimulatorError(f"--url {url!r} is not an http(s) URL, e.g. http://127.0.0.1:8000") from None
    except requests.exceptions.RequestException as exc:
        raise SimulatorError(f"cannot reach Keel at {url} ({type(exc).__name__}): is it running? check --url") from None
    if response.status_code in (401, 403):
        raise SimulatorError(f"Keel at {url} rejected the ingest key (HTTP {response.status_code}): check --key")
    if response.status_code == 404:
        raise SimulatorError(f"{endpoint} does not exist (HTTP 404): --url must be Keel's base URL")
    if not 200 <= response.status_code < 300:
        detail = response.text.strip().replace("\n", " ")[:200]
        raise SimulatorError(f"{endpoint} answered HTTP {response.status_code}: {detail}")


class _Collect(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        with self.lock:
            self.spans.append(span)

    def take(self) -> list[ReadableSpan]:
        with self.lock:
            spans, self.spans = self.spans, []
        return spans


class OtlpSender:
    """One tracer per simulated service (its own resource), one OTLP/HTTP exporter for all of them."""

    def __init__(self, url: str, key: str, timeout: float = 30.0, environment: str = "production") -> None:
        self.endpoint = traces_endpoint(url)
        self.exporter = OTLPSpanExporter(
            endpoint=self.endpoint, headers={"Authorization": f"Bearer {key}"}, timeout=timeout,
            compression=Compression.Gzip,
        )
        self._collect = _Collect()
        self._providers: list[TracerProvider] = []
        self.tracers: dict[str, Tracer] = {}
        for service in SERVICES:
            provider = TracerProvider(
                resource=Resource.create({
                    "service.name": service.name,
                    "service.version": service.version,
                    "deployment.environment.name": environment,
                }),
                shutdown_on_exit=False,
            )
            provider.add_span_processor(self._collect)
            self._providers.append(provider)
            self.tracers[service.name] = provider.get_tracer(SCOPE, SCOPE_VERSION)
        # The exporter logs each failure itself; we report them once, as SimulatorError.
        logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)
        logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").setLevel(logging.CRITICAL)
        self.sent = 0

    def record(self, calls: Sequence[Call]) -> None:
        for call in calls:
            self._record(call)

    def _record(self, call: Call) -> None:
        model, route = call.model, call.route
        attributes: dict[str, str | int | float | bool | tuple[str, ...]] = {
            "gen_ai.operation.name": route.operation,
            "gen_ai.provider.name": model.provider,
            "gen_ai.request.model": model.request_model,
            "gen_ai.usage.input_tokens": call.input_tokens,
            "server.address": model.server_address,
            "server.port": 443,
            "keel.route": route.name,
            "keel.cost_center": call.service.cost_center,
            "user.id": call.user_id,
        }
        if route.operation == "chat":
            attributes.update({
                "gen_ai.request.max_tokens": route.max_tokens,
                "gen_ai.request.temperature": 0.3,
                "gen_ai.request.stream": call.ttft_s is not None,
                "gen_ai.conversation.id": call.conversation_id,
            })
        if not call.error_type:
            attributes["gen_ai.response.model"] = model.response_model
            attributes["gen_ai.response.id"] = f"resp-{call.conversation_id[5:]}"
            if route.operation == "chat":
                attributes["gen_ai.usage.output_tokens"] = call.output_tokens
                attributes["gen_ai.response.finish_reasons"] = (call.finish_reason,)
            if call.cache_read_tokens:
                attributes["gen_ai.usage.cache_read.input_tokens"] = call.cache_read_tokens
            if call.ttft_s is not None:
                attributes["gen_ai.response.time_to_first_chunk"] = round(call.ttft_s, 4)
        else:
            attributes["error.type"] = call.error_type
            attributes["http.response.status_code"] = call.http_status
        start_ns = int(call.start.timestamp() * 1e9)
        span = self.tracers[call.service.name].start_span(
            f"{route.operation} {model.request_model}", kind=SpanKind.CLIENT, attributes=attributes,
            start_time=start_ns,
        )
        if call.error_type:
            span.set_status(Status(StatusCode.ERROR, f"{call.error_type} (HTTP {call.http_status})"))
        span.end(end_time=start_ns + int(call.duration_s * 1e9))

    def pending(self) -> int:
        return len(self._collect.spans)

    def flush(self) -> int:
        """Export every recorded span; raise SimulatorError when Keel refuses a batch (after the SDK's retries)."""
        spans = self._collect.take()
        for i in range(0, len(spans), BATCH):
            batch = spans[i : i + BATCH]
            if self.exporter.export(batch) is not SpanExportResult.SUCCESS:
                raise SimulatorError(
                    f"Keel refused or did not answer a batch of {len(batch)} spans at {self.endpoint} "
                    f"after {self.sent} were sent"
                )
            self.sent += len(batch)
        return len(spans)

    def close(self) -> None:
        self.exporter.shutdown()
        for provider in self._providers:
            provider.shutdown()
