"""Faster ingest: span keys bucketed by minute, and a lean traces landing view beside one for extra PII patterns.

* ``keel_span_keys`` replaces the span rows of ``keel_ingest_keys``: the retry check reads the minutes a batch
  covers instead of every key of the last two days (log request ids stay in ``keel_ingest_keys``).
* ``keel_traces_landing_mv`` handles full and redacted content only; requests of projects with extra patterns
  or capture "none" go to ``keel_traces_custom_landing``, whose view applies every switch.
* ``otel_traces`` drops its bloom filters over attribute *values*: they hash every value, prompts and completions
  included, on every insert and again at every merge, and content makes them saturate anyway (the key filters
  and the trace id filter stay).
* The two big tables merge more parts at a time (``merge_selector_base`` 10, default 5): each span is rewritten
  fewer times on its way into large parts, at the price of a few more parts per partition.
"""

from __future__ import annotations

from ingestion.clickhouse import landing
from ingestion.clickhouse.ddl import Topology


def operations(t: Topology) -> list[str]:
    return [
        *landing.span_keys(t),
        f"DROP VIEW IF EXISTS {t.local(landing.KEYS_TABLE)}_span_mv{t.on_cluster}",
        *landing.lean_traces_views(t),
        *(f"ALTER TABLE {t.local('otel_traces')}{t.on_cluster} DROP INDEX IF EXISTS {index}"
          for index in ("idx_span_attr_value", "idx_res_attr_value")),
        *(f"ALTER TABLE {t.local(table)}{t.on_cluster} MODIFY SETTING merge_selector_base = 10"
          for table in ("otel_traces", "llm_calls")),
    ]
