"""Finalised per-minute detector series (``series_1m``) and the ledger of finalised minutes, for cold sweeps."""

from __future__ import annotations

from ingestion.clickhouse import schema
from ingestion.clickhouse.ddl import Topology


def operations(t: Topology) -> list[str]:
    return schema.series_1m(t)
