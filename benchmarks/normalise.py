"""What the normalising views cost on the ingest path, on one thread.

In a throwaway embedded chDB with Keel's real schema (``otel_traces`` → ``llm_calls`` view → rollups and coverage
views, price and project dictionaries), realistic GenAI spans (≈25 attributes, two content values of 0.1–2 KB,
a streamed tenth with 20 chunk events, a quarter non-LLM HTTP spans) are generated in ClickHouse, then:

* ``raw_insert``: INSERT of the spans into a copy of ``otel_traces`` that has no views (the floor);
* ``insert_with_views``: the same INSERT into ``otel_traces``, running normalisation, pricing and every rollup;
* ``normalise_select``: the normalising SELECT alone (no writes).

Rates are spans per second (all spans, LLM or not) from the process CPU time of the best of three runs on one
thread (the machine is shared, so wall time is reported too but is noisy).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

SPANS = 100_000
RUNS = 3
RESULT = Path(__file__).resolve().parent / "results" / "normalise.json"
WORDS = ["the", "customer", "asked", "about", "their", "invoice", "and", "refund", "policy", "for", "annual",
         "plans", "please", "summarise", "briefly", "with", "numbers", "tables", "and", "sources"]


def _configure_django() -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure(KEEL_RAW_TTL_DAYS=30, KEEL_CONTENT_TTL_DAYS=30, KEEL_ROLLUP_TTL_DAYS=400)


def _source_sql(table: str) -> str:
    words = "[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    text = (f"arrayStringConcat(arrayMap(i -> {words}[(cityHash64(number, i, {{salt}}) % {len(WORDS)}) + 1], "
            "range(15 + (cityHash64(number, {salt}) % 300))), ' ')")
    models = "['gpt-4o-mini', 'gpt-4o', 'claude-sonnet-4-5', 'gemini-2.5-flash', 'in-house-model']"
    llm = f"""map(
        'gen_ai.operation.name', 'chat', 'gen_ai.provider.name', if(number % 5 = 2, 'anthropic', 'openai'),
        'gen_ai.request.model', model, 'gen_ai.response.model', concat(model, '-2025-01-01'),
        'gen_ai.usage.input_tokens', toString(100 + number % 4000),
        'gen_ai.usage.output_tokens', toString(number % 900),
        'gen_ai.usage.cache_read.input_tokens', toString(number % 64), 'gen_ai.response.finish_reasons', '["stop"]',
        'gen_ai.response.id', concat('chatcmpl-', toString(number)), 'gen_ai.request.max_tokens', '1024',
        'gen_ai.request.temperature', '0.2', 'server.address', 'api.openai.com', 'server.port', '443',
        'openai.response.service_tier', 'default', 'openai.response.system_fingerprint', 'fp_abc123',
        'gen_ai.is_streaming', if(number % 10 = 0, 'true', 'false'), 'gen_ai.openai.api_base', 'https://api/v1/',
        'gen_ai.usage.total_tokens', '1000', 'gen_ai.usage.reasoning_tokens', '0', 'gen_ai.conversation.id',
        concat('conv-', toString(number % 1000)), 'user.id', concat('u', toString(number % 5000)),
        'keel.route', if(number % 3 = 0, 'checkout', ''), 'http.flavor', '1.1',
        'gen_ai.input.messages', {text.format(salt=1)}, 'gen_ai.output.messages', {text.format(salt=2)})"""
    http = "map('http.method', 'GET', 'http.route', '/api/items', 'http.status_code', '200', 'net.peer.name', 'db')"
    events = "if(number % 10 = 0, range(20), [])"
    return f"""INSERT INTO {table} (ProjectId, Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,
    ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage,
    `Events.Timestamp`, `Events.Name`, `Events.Attributes`, `Links.TraceId`, `Links.SpanId`, `Links.TraceState`,
    `Links.Attributes`)
SELECT 'bench', now64(9) - toIntervalSecond(number % 3600), hex(cityHash64(number, 'trace')),
    hex(cityHash64(number, 'span')), '', '', if(is_llm, 'openai.chat', 'GET /api/items'), 'Client', 'checkout',
    map('service.name', 'checkout', 'deployment.environment.name', 'prod'),
    if(is_llm, 'opentelemetry.instrumentation.openai.v1', 'opentelemetry.instrumentation.requests'), '0.62.4',
    if(is_llm, {llm}, {http}), 1500000000 + number % 1000000, if(number % 50 = 0, 'Error', 'Unset'), '',
    arrayMap(i -> now64(9) - toIntervalSecond(number % 3600) + toIntervalMillisecond(100 + i * 20), {events}),
    arrayMap(i -> 'gen_ai.content.completion.chunk', {events}), arrayMap(i -> map('chunk', toString(i)), {events}),
    [], [], [], []
FROM (SELECT number, number % 4 != 3 AS is_llm, {models}[(number % 5) + 1] AS model FROM numbers({SPANS}))"""


def main() -> dict[str, object]:
    _configure_django()
    from chdb import session

    from ingestion.clickhouse.ddl import Topology
    from ingestion.clickhouse.schema import llm_calls, otel_traces, prices, projects, rollups
    from ingestion.coverage import coverage_statements
    from ingestion.normalise import normalising_select

    t = Topology()
    with tempfile.TemporaryDirectory() as tmp:
        s = session.Session(tmp)
        for statement in [*otel_traces(t), *prices(t), *projects(t), *llm_calls(t), *rollups(t),
                          *coverage_statements(t)]:
            s.query(statement)
        s.query("INSERT INTO keel_prices (provider, model, valid_from, valid_to, input_per_mtok, output_per_mtok, "
                "cached_input_per_mtok, cache_write_per_mtok, reasoning_per_mtok, version) VALUES "
                "('openai', 'gpt-4o-mini', '2024-01-01', '2149-06-06', 0.15, 0.6, 0.075, 0.15, 0.6, 1), "
                "('openai', 'gpt-4o', '2024-01-01', '2149-06-06', 2.5, 10, 1.25, 2.5, 10, 1), "
                "('anthropic', 'claude-sonnet-4-5', '2024-01-01', '2149-06-06', 3, 15, 0.3, 3.75, 15, 1)")
        s.query("SYSTEM RELOAD DICTIONARY keel_price_dict")
        s.query("SYSTEM RELOAD DICTIONARY keel_project_dict")
        s.query("CREATE TABLE raw_only AS otel_traces")
        s.query("CREATE TABLE source AS otel_traces ENGINE = Memory")
        s.query(_source_sql("source"))
        avg_bytes = float(str(s.query("SELECT avg(length(toString(SpanAttributes))) FROM source", "TSV")).strip())

        walls: dict[str, float] = {}

        def best(sql: str, before: tuple[str, ...] = ()) -> float:
            cpu, wall = [], []
            for _ in range(RUNS):
                for statement in before:
                    s.query(statement)
                c0, w0 = time.process_time(), time.perf_counter()
                s.query(sql + " SETTINGS max_threads = 1, max_insert_threads = 1", "TSV")
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            walls[sql[:40]] = min(wall)
            return min(cpu)

        raw = best("INSERT INTO raw_only SELECT * FROM source", before=("TRUNCATE TABLE raw_only",))
        with_views = best("INSERT INTO otel_traces SELECT * FROM source",
                          before=("TRUNCATE TABLE otel_traces", "TRUNCATE TABLE llm_calls"))
        select_only = best(f"SELECT count(), sum(InputTokens), sum(ifNull(TotalCost, 0)) "
                           f"FROM ({normalising_select('source')})")
        calls = int(str(s.query("SELECT count() FROM llm_calls", "TSV")).strip())
        priced = int(str(s.query("SELECT countIf(Priced = 1) FROM llm_calls", "TSV")).strip())

    result: dict[str, object] = {
        "spans": SPANS,
        "llm_calls_per_run": calls,
        "priced_share": round(priced / max(calls, 1), 3),
        "avg_span_attribute_bytes": round(avg_bytes),
        "raw_insert_spans_per_s": round(SPANS / raw),
        "insert_with_views_spans_per_s": round(SPANS / with_views),
        "normalise_select_spans_per_s": round(SPANS / select_only),
        "views_overhead_us_per_span": round((with_views - raw) / SPANS * 1e6, 2),
        "threads": 1,
        "wall_spans_per_s": {k: round(SPANS / v) for k, v in walls.items()},
    }
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
