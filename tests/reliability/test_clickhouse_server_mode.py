"""Server mode (``KEEL_CLICKHOUSE_URL=http://…``) against ClickHouse's HTTP interface killed and restarted.

The ClickHouse on the other end is :mod:`tests.reliability.clickhouse_http`: the real ClickHouse engine (chDB) behind
ClickHouse's HTTP protocol, in its own process, because no real ``clickhouse-server`` can be installed here. Keel
runs as ``manage.py serve`` with the production client (clickhouse-connect over HTTP, unchanged); spans come from
the real OpenTelemetry SDK exporter. What this covers and what it does not: benchmarks/RELIABILITY.md.

The faults are armed on the fixture so they land at a chosen instant instead of wherever a timer falls:
``crash`` SIGKILLs the ClickHouse process on the n-th ingest insert, either when the request arrived (nothing
stored) or right after the engine stored it (stored, never acknowledged: the retry must not store it twice).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
import requests
from clickhouse_connect.driver.client import Client
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from benchmarks import load
from benchmarks.ingest_throughput import export_request
from ingestion.clickhouse.migrator import discover
from tests.reliability.clickhouse_http import ClickHouseHttpProcess, _free_port_in

pytestmark = pytest.mark.slow

CLICKHOUSE_PORTS = (18200, 18249)
KEEL_PORTS = (18250, 18299)
DATABASE = "keel"
RETRY_AFTER = 2
LANDING = r"^keel_traces(_custom)?_landing\b"  # the ingest inserts (the writer's raw Protobuf insert)


@pytest.fixture
def clickhouse_http(tmp_path: Path) -> Iterator[ClickHouseHttpProcess]:
    """The fixture server on a fixed port and data dir, with the database an operator would have created."""
    ch = ClickHouseHttpProcess.in_port_range(tmp_path / "clickhouse", *CLICKHOUSE_PORTS)
    ch.start()
    client(ch, "default").command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    yield ch
    ch.kill()


def client(ch: ClickHouseHttpProcess, database: str = DATABASE) -> Client:
    """The test's own clickhouse-connect HTTP client on the fixture (for counting; Keel has its own)."""
    return clickhouse_connect.get_client(host="127.0.0.1", port=ch.port, username=ch.user, password=ch.password,
                                         database=database, autogenerate_session_id=False)


def server_mode_env(ch: ClickHouseHttpProcess) -> dict[str, str]:
    return {"KEEL_CLICKHOUSE_URL": ch.url(DATABASE), "KEEL_RETRY_AFTER_SECONDS": str(RETRY_AFTER)}


@pytest.fixture
def keel(tmp_path: Path, clickhouse_http: ClickHouseHttpProcess) -> Iterator[tuple[load.Server, str, str]]:
    """``manage.py serve --no-demo`` in server mode on the fixture: (server, ingest+read key, tenant id)."""
    env = server_mode_env(clickhouse_http)
    key, tenant = load.prepare(tmp_path, project="server-mode", env=env)
    server = load.Server(tmp_path, port=_free_port_in(*KEEL_PORTS), env=env)
    server.start()
    yield server, key, tenant
    server.stop()


def stored(ch: ClickHouseHttpProcess, tenant: str) -> dict[str, Any]:
    """What the project has in ClickHouse: distinct span ids and raw row counts (a duplicate shows as an extra row)."""
    c = client(ch)
    p = {"t": tenant}

    def one(sql: str) -> int:
        return int(c.query(sql, parameters=p).result_rows[0][0])

    return {
        "ids": {r[0] for r in c.query("SELECT DISTINCT TraceId || SpanId FROM otel_traces WHERE ProjectId = {t:String}",
                                      parameters=p).result_rows},
        "rows": one("SELECT count() FROM otel_traces WHERE ProjectId = {t:String}"),
        "call_ids": {r[0] for r in c.query("SELECT DISTINCT TraceId || SpanId FROM llm_calls "
                                           "WHERE ProjectId = {t:String}", parameters=p).result_rows},
        "call_rows": one("SELECT count() FROM llm_calls WHERE ProjectId = {t:String}"),
        "rollup_1m_calls": one("SELECT sum(Calls) FROM rollups_1m WHERE ProjectId = {t:String}"),
        "rollup_1h_calls": one("SELECT sum(Calls) FROM rollups_1h WHERE ProjectId = {t:String}"),
    }


def body_ids(body: bytes) -> set[str]:
    msg = ExportTraceServiceRequest.FromString(body)
    return {s.trace_id.hex() + s.span_id.hex() for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans}


def post(server: load.Server, key: str, body: bytes) -> requests.Response:
    return requests.post(f"{server.url}/v1/traces", data=body, timeout=60, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/x-protobuf"})


def metric(server: load.Server, name: str, labels: str) -> float:
    """A counter from the Keel process's own /metrics (0 when it has no sample yet)."""
    text = requests.get(f"{server.url}/metrics", timeout=30).text
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def assert_stored_exactly_once(got: dict[str, Any], sent: set[str]) -> None:
    assert got["ids"] == sent, f"{len(sent - got['ids'])} spans lost, {len(got['ids'] - sent)} never sent"
    assert got["rows"] == len(sent), f"otel_traces has {got['rows']} rows for {len(sent)} spans"
    assert got["call_ids"] == sent
    assert got["call_rows"] == len(sent), f"llm_calls has {got['call_rows']} rows for {len(sent)} spans"
    assert got["rollup_1m_calls"] == got["rollup_1h_calls"] == len(sent), got


def test_schema_migrations_apply_over_http(tmp_path: Path, clickhouse_http: ClickHouseHttpProcess, ch) -> None:  # type: ignore[no-untyped-def]
    """``migrate_clickhouse`` in server mode builds the same schema as embedded mode, and a second run is a no-op."""
    env = server_mode_env(clickhouse_http)
    out = load.manage(tmp_path, "migrate_clickhouse", env=env)
    expected = discover()
    assert [f"{m.version:04d}_{m.name}" for m in expected] == re.findall(r"applied ClickHouse migration (\S+)", out)
    assert "up to date" in load.manage(tmp_path, "migrate_clickhouse", env=env)

    remote = client(clickhouse_http)
    ledger = remote.query("SELECT version FROM keel_schema_migrations FINAL ORDER BY version").result_rows
    assert [r[0] for r in ledger] == [m.version for m in expected]
    tables_sql = "SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name"
    columns_sql = ("SELECT table, name, type, default_kind FROM system.columns WHERE database = currentDatabase() "
                   "ORDER BY table, position")
    over_http = dict(remote.query(tables_sql).result_rows)
    embedded = dict(ch.query(tables_sql).result_rows)  # the test run's own store, migrated by conftest
    assert {"otel_traces", "llm_calls", "rollups_1m", "rollups_1h", "keel_span_keys", "keel_traces_landing",
            "keel_price_dict", "keel_project_dict", "series_1m"} <= set(over_http)
    assert over_http == {name: engine for name, engine in embedded.items() if name in over_http}
    assert set(embedded) - set(over_http) <= {n for n in embedded if not n.startswith(("keel_", "otel_", "llm_",
                                                                                        "rollups", "series"))}
    remote_columns = [r for r in remote.query(columns_sql).result_rows if r[0] in over_http]
    assert remote_columns == [r for r in ch.query(columns_sql).result_rows if r[0] in over_http]


class GenAiStream:
    """The real OTel SDK (BatchSpanProcessor + OTLP/HTTP protobuf exporter) sending GenAI spans from a thread."""

    def __init__(self, url: str, key: str, spans: int, pause_s: float) -> None:
        self.exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {key}"},
                                         timeout=60)
        self.provider = TracerProvider(resource=Resource.create({"service.name": "server-mode-app"}),
                                       shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter, schedule_delay_millis=100,
                                                            max_export_batch_size=40))
        self.tracer = self.provider.get_tracer("opentelemetry.instrumentation.openai_v2")
        self.sent: set[str] = set()
        self.thread = threading.Thread(target=self._run, args=(spans, pause_s), daemon=True)

    def _run(self, spans: int, pause_s: float) -> None:
        for i in range(spans):
            with self.tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": i,
                    "gen_ai.usage.output_tokens": 7}) as span:
                ctx = span.get_span_context()
                self.sent.add(f"{ctx.trace_id:032x}{ctx.span_id:016x}")
            time.sleep(pause_s)

    def finish(self) -> bool:
        self.thread.join(120)
        flushed = self.provider.force_flush(120_000)
        self.provider.shutdown()
        return flushed and not self.thread.is_alive()


@pytest.mark.parametrize("when", ["before", "after"])
def test_clickhouse_killed_mid_stream_exporter_retries_and_every_span_is_stored_once(
        keel: tuple[load.Server, str, str], clickhouse_http: ClickHouseHttpProcess, when: str) -> None:
    """ClickHouse is SIGKILLed on the 3rd ingest insert (``before``: request received, nothing stored; ``after``:
    stored, never acknowledged). While it is down Keel answers 503 + Retry-After and /readyz is not ready; it is
    restarted on the same port and data directory, the exporter's retries land, and every span sent is stored
    exactly once in otel_traces, llm_calls and both rollups. Then an identical request retried after the recovery
    is acknowledged and not stored twice."""
    server, key, tenant = keel
    ch = clickhouse_http
    ch.arm("crash", when, LANDING, nth=3)
    stream = GenAiStream(server.url, key, spans=240, pause_s=0.01)
    stream.thread.start()
    assert ch.wait_exit(60), "the armed crash never fired: fewer than 3 ingest inserts"

    refused_body = export_request(3, seed=19)
    raw = post(server, key, refused_body)
    ready = requests.get(f"{server.url}/readyz", timeout=60)
    deadline = time.monotonic() + 30
    while metric(server, "keel_otlp_requests_total", 'signal="traces",status="503"') < 3:
        assert time.monotonic() < deadline, "the exporter did not retry against Keel's 503s"
        time.sleep(0.2)
    ch.start()  # same port, same data directory
    assert stream.finish(), "the exporter gave up on a batch (or the flush timed out)"
    assert raw.status_code == 503, raw.content[:300]
    assert raw.headers["Retry-After"] == str(RETRY_AFTER)
    assert b"nothing was stored, retry later" in raw.content
    assert ready.status_code == 503 and ready.json()["checks"]["clickhouse"]["ok"] is False, ready.content[:500]
    assert f"127.0.0.1:{ch.port}" in ready.json()["checks"]["clickhouse"]["error"]
    assert requests.get(f"{server.url}/readyz", timeout=60).status_code == 200
    assert_stored_exactly_once(stored(ch, tenant), stream.sent)

    # The request refused during the outage, retried now, twice: stored once, both acknowledged.
    first, again = post(server, key, refused_body), post(server, key, refused_body)
    assert first.status_code == again.status_code == 200, (first.content[:300], again.content[:300])
    assert_stored_exactly_once(stored(ch, tenant), stream.sent | body_ids(refused_body))
    assert server.stop() == 0


def test_connection_dropped_after_a_stored_insert_is_not_stored_twice(
        keel: tuple[load.Server, str, str], clickhouse_http: ClickHouseHttpProcess) -> None:
    """ClickHouse stores an ingest insert, then the connection drops before the answer (a proxy timing out, a
    network cut) while the server keeps running. The span must be stored once: whoever retries (the driver, or the
    exporter after Keel's 503) must go through Keel's duplicate check, not replay the insert blindly."""
    server, key, tenant = keel
    body = export_request(5, seed=23)
    clickhouse_http.arm("drop", "after", LANDING, nth=1)
    answers = [post(server, key, body)]
    while answers[-1].status_code != 200 and len(answers) < 5:  # what the OTel exporter does, after Retry-After
        assert answers[-1].status_code == 503, answers[-1].content[:300]
        time.sleep(float(answers[-1].headers["Retry-After"]))
        answers.append(post(server, key, body))
    statuses = [a.status_code for a in answers]
    assert statuses[0] == 503 and statuses[-1] == 200, statuses  # the dropped answer is a 503, not a blind replay
    assert answers[0].headers["Retry-After"] == str(RETRY_AFTER)
    assert_stored_exactly_once(stored(clickhouse_http, tenant), body_ids(body))
