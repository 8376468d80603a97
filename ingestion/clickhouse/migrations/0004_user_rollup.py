"""Per-user hourly spend rollup (the Cost page's by-user chart), backfilled from the calls already stored."""

from __future__ import annotations

from ingestion.clickhouse import schema
from ingestion.clickhouse.ddl import Topology


def operations(t: Topology) -> list[str]:
    return [*schema.user_rollup(t), schema.user_rollup_backfill(t)]
