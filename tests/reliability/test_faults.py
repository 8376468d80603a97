"""Faults during ingestion: ClickHouse failing mid-stream (embedded) or down (server mode), and the web process
SIGKILLed mid-batch.

The stream tests compare the set of (TraceId, SpanId) the client had acknowledged with the set stored — nothing
lost, nothing twice. Other fault scenarios live beside the code they exercise and are not repeated here:
- a notification endpoint down → retries with backoff, detection unaffected:
  tests/alerts/test_notifications.py::test_webhook_retries_with_exponential_backoff_then_succeeds and
  ::test_a_dead_channel_does_not_block_the_others;
- the gateway adapter failing → action failed, previous revision active, alert raised:
  tests/gateway/test_push_adapters.py::test_failed_push_keeps_the_previous_revision_and_pages and
  ::test_unreachable_gateway_fails_cleanly;
- the Celery worker killed mid-task and Redis restarted: tests/reliability/test_worker_faults.py;
- server-mode ClickHouse killed mid-stream and restarted: tests/reliability/test_clickhouse_server_mode.py.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import uvicorn
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from benchmarks import load
from benchmarks.ingest_throughput import export_request
from controlplane.apikeys import issue_key
from ingestion.clickhouse.client import ClickHouseUnavailable, get_client
from ingestion.writer import BatchWriter, set_writer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_keel() -> Iterator[str]:
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
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _stored(tenant: str) -> tuple[set[str], int]:
    client = get_client()
    ids = client.query("SELECT DISTINCT lower(TraceId) || lower(SpanId) FROM otel_traces WHERE ProjectId = {p:String}",
                       parameters={"p": tenant}).result_rows
    rows = client.query("SELECT count() FROM otel_traces WHERE ProjectId = {p:String}",
                        parameters={"p": tenant}).result_rows[0][0]
    return {r[0] for r in ids}, int(rows)


@pytest.mark.django_db(transaction=True)
def test_clickhouse_failing_mid_stream_real_exporter_retries_and_every_span_is_stored_once(
        live_keel, project, settings) -> None:  # type: ignore[no-untyped-def]
    """Embedded ClickHouse: every insert fails for ~3 s in the middle of a stream of spans from the real OTel SDK
    (BatchSpanProcessor + OTLP/HTTP protobuf exporter). Keel answers 503 + Retry-After; the exporter retries."""
    settings.KEEL_RETRY_AFTER_SECONDS = 1
    state = {"inserts": 0, "refused": 0, "down_since": 0.0}

    def flaky_client() -> Any:
        """Up for the first insert, then down (every insert fails) until 3 were refused over at least 2 s."""
        if state["inserts"] >= 1 and (state["refused"] < 3 or time.monotonic() - state["down_since"] < 2):
            state["down_since"] = state["down_since"] or time.monotonic()
            state["refused"] += 1
            raise ClickHouseUnavailable("inserts are failing")
        state["inserts"] += 1
        return get_client()

    key = issue_key(project, ["ingest"]).secret
    exporter = OTLPSpanExporter(endpoint=f"{live_keel}/v1/traces", headers={"Authorization": f"Bearer {key}"},
                                timeout=30)
    provider = TracerProvider(resource=Resource.create({"service.name": "fault-app"}), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200, max_export_batch_size=64))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    sent: set[str] = set()
    previous = set_writer(BatchWriter(client_factory=flaky_client))
    try:
        for i in range(300):
            with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": i}) as span:
                ctx = span.get_span_context()
                sent.add(f"{ctx.trace_id:032x}{ctx.span_id:016x}")
            time.sleep(0.01)
        assert provider.force_flush(120_000)
    finally:
        provider.shutdown()
        set_writer(previous)
    assert state["refused"] >= 3, "the outage never hit an insert"
    assert state["inserts"] >= 2, "nothing was inserted after the recovery"
    stored, rows = _stored(project.tenant_id)
    assert stored == sent
    assert rows == len(sent) == 300


class _DroppingListener:
    """A port where something accepts TCP connections and closes them unanswered: a server dying mid-request."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _closed_port() -> int:
    """A port nothing listens on: connecting is refused at once (ECONNREFUSED), as when the server is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("fault", ["refused", "dropped"])
@pytest.mark.django_db(transaction=True)
def test_server_mode_clickhouse_down_is_503_retry_after_nothing_stored_and_not_ready(
        live_keel, project, settings, fault) -> None:  # type: ignore[no-untyped-def]
    """Server mode (``KEEL_CLICKHOUSE_URL=http://…``, the real clickhouse-connect driver) with the ClickHouse port
    refusing connections, or accepting and dropping them: nothing is stored. Recovery (ClickHouse killed
    mid-stream, restarted, every span stored once) is in tests/reliability/test_clickhouse_server_mode.py, against
    the ClickHouse engine behind its HTTP protocol, since no real clickhouse-server can be installed here."""
    from controlplane.metrics import REGISTRY

    def metric(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    listener = _DroppingListener() if fault == "dropped" else None
    port = listener.port if listener else _closed_port()
    embedded_url = settings.KEEL_CLICKHOUSE_URL
    settings.KEEL_CLICKHOUSE_URL = f"http://default:@127.0.0.1:{port}/keel"
    settings.KEEL_RETRY_AFTER_SECONDS = 1
    key = issue_key(project, ["ingest", "read"]).secret
    body = export_request(3, seed=11)
    previous = set_writer(BatchWriter())  # the production writer: client from get_client(), i.e. the server URL
    before = (metric("keel_otlp_requests_total", {"signal": "traces", "status": "503"}),
              metric("keel_spans_rejected_total", {"reason": "unavailable"}))
    try:
        raw = requests.post(f"{live_keel}/v1/traces", data=body, timeout=60, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/x-protobuf"})
        exporter = OTLPSpanExporter(endpoint=f"{live_keel}/v1/traces", timeout=4,
                                    headers={"Authorization": f"Bearer {key}"})
        provider = TracerProvider(resource=Resource.create({"service.name": "server-mode-app"}),
                                  shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
        tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}):
            pass  # one span: one batch, so every further 503 below is the exporter retrying it
        provider.force_flush(30_000)  # the exporter retries the 503s until its own timeout, then drops the batch
        provider.shutdown()
        reads = requests.get(f"{live_keel}/api/v1/calls", headers={"Authorization": f"Bearer {key}"}, timeout=60)
        ready = requests.get(f"{live_keel}/readyz", timeout=60)
    finally:
        set_writer(previous)
        if listener:
            listener.close()
    assert raw.status_code == 503, raw.content[:300]
    assert raw.headers["Retry-After"] == "1"
    assert b"nothing was stored, retry later" in raw.content
    exporter_tries = metric("keel_otlp_requests_total", {"signal": "traces", "status": "503"}) - before[0] - 1
    assert exporter_tries >= 2, f"the exporter did not retry the 503 ({exporter_tries} tries)"
    assert metric("keel_spans_rejected_total", {"reason": "unavailable"}) - before[1] == 3 + exporter_tries
    assert reads.status_code == 503 and int(reads.headers["Retry-After"]) >= 1, reads.content[:300]
    assert ready.status_code == 503
    check = ready.json()["checks"]["clickhouse"]
    assert check["ok"] is False and f"127.0.0.1:{port}" in check["error"], check
    assert ready.json()["checks"]["database"]["ok"] is True
    if listener:
        assert listener.accepted >= 3  # the driver really reached the port each time
    settings.KEEL_CLICKHOUSE_URL = embedded_url  # the test run's own store: nothing of this project reached it
    stored, rows = _stored(project.tenant_id)
    assert stored == set() and rows == 0


def _sender_thread(sender: load.Sender, bodies: list[tuple[bytes, list[str]]], give_up_at: float) -> threading.Thread:
    def run() -> None:
        for body, ids in bodies:
            sender.send(body, ids, give_up_at)

    return threading.Thread(target=run)


def test_web_process_killed_mid_batch_acknowledged_is_kept_and_the_rest_is_retried(tmp_path) -> None:
    """``manage.py serve`` is SIGKILLed while requests are in flight and restarted on the same store. The client
    (retrying every non-200 and every dropped connection with the same body, as the OTel exporter does) ends with
    every span acknowledged; the store then holds exactly the acknowledged set, each span once."""
    key, tenant = load.prepare(tmp_path)
    server = load.Server(tmp_path)
    server.start()
    sender = load.Sender(server.port, key, spans_per_request=64, seed=3)
    bodies = [sender._body() for _ in range(40)]
    ids_sent = {i for _body, ids in bodies for i in ids}
    threads = [_sender_thread(sender, bodies[n::2], time.monotonic() + 400) for n in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(sender.acked) < 64 * 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    acked_before_kill = set(sender.acked)
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    assert 0 < len(acked_before_kill) < len(ids_sent), "the kill must land mid-stream"
    time.sleep(1.0)
    server.start()  # the same var dir and port: flock died with the process
    for t in threads:
        t.join(420)
    assert sender.acked == ids_sent, f"{len(ids_sent - sender.acked)} spans were never acknowledged"
    assert server.stop() == 0
    stored = load.stored_ids(tmp_path, tenant)
    assert acked_before_kill <= stored["ids"], "acknowledged before the kill, then lost"
    assert stored["ids"] == ids_sent
    assert stored["rows"] == len(ids_sent), "a retried batch was stored twice"
    assert stored["llm_calls_final"] == len(ids_sent)
    assert sender.statuses.get("0", 0) > 0  # connections really dropped and were retried
