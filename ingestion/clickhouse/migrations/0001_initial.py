"""Raw spans, prices, project switches, LLM calls and their per-minute/per-hour rollups."""

from __future__ import annotations

from ingestion.clickhouse import schema
from ingestion.clickhouse.ddl import Topology


def operations(t: Topology) -> list[str]:
    return [
        *schema.otel_traces(t),
        *schema.prices(t),
        *schema.projects(t),
        *schema.llm_calls(t),
        *schema.rollups(t),
    ]
