"""Per-source coverage rollup: which conventions each instrumentation scope × service was recognised by."""

from __future__ import annotations

from ingestion.clickhouse.ddl import Topology
from ingestion.coverage import coverage_statements


def operations(t: Topology) -> list[str]:
    return coverage_statements(t)
