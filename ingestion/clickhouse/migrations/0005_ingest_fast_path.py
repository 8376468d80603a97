"""Faster ingest: span keys bucketed by minute, and a lean traces landing view beside one for extra PII patterns.

* ``keel_span_keys`` replaces the span rows of ``keel_ingest_keys``: the retry check reads the minutes a batch
  covers instead of every key of the last two days (log request ids stay in ``keel_ingest_keys``).
* ``keel_traces_landing_mv`` loses the extra-pattern branch; requests of projects with extra patterns go to
  ``keel_traces_custom_landing``, whose view keeps it.
"""

from __future__ import annotations

from ingestion.clickhouse import landing
from ingestion.clickhouse.ddl import Topology


def operations(t: Topology) -> list[str]:
    return [
        *landing.span_keys(t),
        f"DROP VIEW IF EXISTS {t.local(landing.KEYS_TABLE)}_span_mv{t.on_cluster}",
        *landing.lean_traces_views(t),
    ]
