"""The ClickHouse layer: migrations, cluster rendering, and the Collector's write path end to end."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest

from ingestion.clickhouse import schema
from ingestion.clickhouse.ddl import Topology
from ingestion.clickhouse.migrator import discover
from tests.support import COLLECTOR_COLUMNS, manage


def test_migrations_apply_twice_on_a_fresh_embedded_store(tmp_path: os.PathLike[str]) -> None:
    env = {"KEEL_VAR_DIR": str(tmp_path)}
    first = manage("migrate_clickhouse", env=env)
    assert first.returncode == 0, first.stderr
    assert "applied ClickHouse migration 0001_initial" in first.stdout
    second = manage("migrate_clickhouse", env=env)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    assert "applied" not in second.stdout


def test_migration_numbers_are_unique_and_ordered() -> None:
    versions = [m.version for m in discover()]
    assert versions == sorted(versions) and versions[0] == 1


def test_cluster_mode_renders_replicated_and_distributed_tables(settings: pytest.FixtureRequest) -> None:
    t = Topology(cluster="keel_cluster", database="keel")
    sql = schema.otel_traces(t)
    assert sql[0].startswith("CREATE TABLE IF NOT EXISTS otel_traces_local ON CLUSTER 'keel_cluster' (")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/keel/otel_traces_local', '{replica}')" in sql[0]
    assert sql[1] == (
        "CREATE TABLE IF NOT EXISTS otel_traces ON CLUSTER 'keel_cluster' AS otel_traces_local "
        "ENGINE = Distributed('keel_cluster', 'keel', 'otel_traces_local', cityHash64(TraceId))"
    )
    calls = schema.llm_calls(t)
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/keel/llm_calls_local', '{replica}')" in calls[0]
    assert calls[2].startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_local_mv ON CLUSTER 'keel_cluster' "
                               "TO llm_calls_local AS SELECT")
    assert "FROM otel_traces_local" in calls[2]
    rollups = "\n".join(schema.rollups(t))
    assert "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/keel/rollups_1m_local', '{replica}')" in rollups
    assert "TO rollups_1h_local" in rollups and "FROM llm_calls_local AS c" in rollups
    # Every DDL statement of every migration carries ON CLUSTER in cluster mode; a backfill (INSERT … SELECT)
    # is data, written once through the Distributed tables.
    for migration in discover():
        for statement in migration.operations(t):
            if statement.startswith("INSERT INTO "):
                assert "_local" not in statement, statement[:80]
                continue
            assert " ON CLUSTER 'keel_cluster'" in statement, statement[:80]


def test_single_node_mode_has_no_cluster_clauses() -> None:
    t = Topology()
    for migration in discover():
        for statement in migration.operations(t):
            assert "ON CLUSTER" not in statement and "Replicated" not in statement and "Distributed" not in statement


def test_raw_table_is_a_superset_of_the_collector_table(ch) -> None:  # type: ignore[no-untyped-def]
    columns = dict(ch.query("SELECT name, type FROM system.columns WHERE table = 'otel_traces'").result_rows)
    expected = {
        "Timestamp": "DateTime64(9)", "TraceId": "String", "SpanId": "String", "ParentSpanId": "String",
        "TraceState": "String", "SpanName": "LowCardinality(String)", "SpanKind": "LowCardinality(String)",
        "ServiceName": "LowCardinality(String)", "ResourceAttributes": "Map(LowCardinality(String), String)",
        "ScopeName": "String", "ScopeVersion": "String", "SpanAttributes": "Map(LowCardinality(String), String)",
        "Duration": "UInt64", "StatusCode": "LowCardinality(String)", "StatusMessage": "String",
        "Events.Timestamp": "Array(DateTime64(9))", "Events.Name": "Array(LowCardinality(String))",
        "Events.Attributes": "Array(Map(LowCardinality(String), String))", "Links.TraceId": "Array(String)",
        "Links.SpanId": "Array(String)", "Links.TraceState": "Array(String)",
        "Links.Attributes": "Array(Map(LowCardinality(String), String))",
    }
    for name, type_ in expected.items():
        assert columns.get(name) == type_, name
    create = ch.query("SHOW CREATE TABLE otel_traces").result_rows[0][0]
    assert re.search(r"INDEX idx_trace_id TraceId TYPE bloom_filter\(0\.001\)", create)
    assert "ORDER BY (ProjectId, ServiceName, SpanName, toDateTime(Timestamp), Timestamp)" in create


@pytest.mark.django_db
def test_a_row_written_the_collector_way_yields_a_call_and_a_rollup(ch) -> None:  # type: ignore[no-untyped-def]
    tenant = os.urandom(8).hex()
    ch.insert(
        "keel_prices",
        [["collector-test-model", "openai", dt.date(2024, 1, 1), dt.date(2100, 1, 1), 2.0, 8.0, 1.0, 0.0, 1]],
        column_names=["model", "provider", "valid_from", "valid_to", "input_per_mtok", "output_per_mtok",
                      "cached_input_per_mtok", "reasoning_per_mtok", "version"],
    )
    ch.command("SYSTEM RELOAD DICTIONARY keel_price_dict")
    start = dt.datetime(2026, 11, 20, 12, 30, 15, 123456)
    row = [
        start, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "", "", "chat collector-test-model",
        "Client", "checkout", {"service.name": "checkout", "keel.project_id": tenant,
                               "deployment.environment.name": "prod"},
        "opentelemetry.instrumentation.openai_v2", "2.4b0",
        {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
         "gen_ai.request.model": "collector-test-model", "gen_ai.response.model": "collector-test-model-2024-07-18",
         "gen_ai.usage.input_tokens": "1000", "gen_ai.usage.output_tokens": "500",
         "gen_ai.response.finish_reasons": '["stop"]'},
        2_500_000_000, "Unset", "", [], [], [], [], [], [], [],
    ]
    ch.insert("otel_traces", [row], column_names=COLLECTOR_COLUMNS)
    call = ch.query(
        "SELECT Route, Provider, RequestModel, ResponseModel, Operation, InputTokens, OutputTokens, TotalCost, "
        "Priced, DurationMs, Environment, ServiceName FROM llm_calls WHERE ProjectId = {p:String}",
        parameters={"p": tenant},
    ).result_rows
    # Priced by stripping the date suffix: 1000 * 2 / 1e6 + 500 * 8 / 1e6 = 0.006 USD.
    assert call == [("collector-test-model", "openai", "collector-test-model", "collector-test-model-2024-07-18",
                     "chat", 1000, 500, pytest.approx(0.006), 1, 2500.0, "prod", "checkout")]
    rollup = ch.query(
        "SELECT Minute, Route, ResponseModel, sum(Calls), sum(InputTokens), sum(Cost), "
        "quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(LatencyQ) FROM rollups_1m WHERE ProjectId = {p:String} "
        "GROUP BY ALL",
        parameters={"p": tenant},
    ).result_rows
    assert rollup == [(dt.datetime(2026, 11, 20, 12, 30), "collector-test-model", "collector-test-model-2024-07-18",
                       1, 1000, pytest.approx(0.006), [2500.0, 2500.0, 2500.0, 2500.0])]
    hourly = ch.query("SELECT sum(Calls) FROM rollups_1h WHERE ProjectId = {p:String}", parameters={"p": tenant})
    assert hourly.result_rows == [(1,)]
