"""OTLP landing tables (Null engine), their flattening views into otel_traces / otel_logs, and ingest keys."""

from __future__ import annotations

from ingestion.clickhouse import landing
from ingestion.clickhouse.ddl import Topology


def operations(t: Topology) -> list[str]:
    return landing.all_statements(t)
