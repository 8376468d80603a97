"""Cheaper traces landing views: attribute maps are built with ``LowCardinality`` keys.

``otel_traces`` stores ``Map(LowCardinality(String), String)``; building the maps with that key type in the view
means the content-key check of the redaction (a set lookup and a regex per attribute) runs once per distinct key
of the block instead of once per attribute, and the insert no longer converts the keys. Same rows as before.
"""

from __future__ import annotations

from ingestion.clickhouse import landing
from ingestion.clickhouse.ddl import Topology


def operations(t: Topology) -> list[str]:
    return landing.traces_view_queries(t)
