"""Cheaper ingest: traces landing views build attribute maps with ``LowCardinality`` keys, and the two big tables
merge small parts vertically.

* ``otel_traces`` stores ``Map(LowCardinality(String), String)``; building the maps with that key type in the
  view means the content-key check of the redaction (a set lookup and a regex per attribute) runs once per
  distinct key of the block instead of once per attribute, and the insert no longer converts the keys. Same
  rows as before; both views' SELECTs are swapped with ``MODIFY QUERY``.
* ``otel_traces`` and ``llm_calls`` merge vertically (sorting key first, then column by column) from the first,
  smallest merges on, not only from 131,072 rows: each insert's part is rewritten by those first merges, and
  vertical merging costs ~25 % less CPU per span on these wide tables with large content columns.
"""

from __future__ import annotations

from ingestion.clickhouse import landing, schema
from ingestion.clickhouse.ddl import Topology


def operations(t: Topology) -> list[str]:
    return [*landing.traces_view_queries(t), *schema.vertical_merges(t)]
