"""Re-pricing stored calls after a price change.

Costs are computed once, when the calls view normalises a span. After a price (or a project's
``client_cost_wins``) changes, :func:`reprice` recomputes one tenant's range from the raw spans, which stay in
``otel_traces``: it deletes the range's rows from ``llm_calls`` and from every rollup fed by it, then re-inserts
through the very SELECT the view uses. The rollup views fire on that insert, so each call is counted exactly
once again. The range is widened to whole hours because the hourly rollup cannot be split.

Run it over closed ranges: spans for the range that arrive *during* a reprice may be counted twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.ddl import Topology
from ingestion.clickhouse.schema import CALLS_TABLE, ROLLUP_1H, ROLLUP_1M, SPAN_TABLE
from ingestion.coverage import COVERAGE_TABLE
from ingestion.normalise import LLM_CALL_COLUMNS, normalising_select

# Every table derived from llm_calls, with its time column.
DERIVED_TABLES = [(ROLLUP_1M, "Minute"), (ROLLUP_1H, "Hour"), (COVERAGE_TABLE, "Hour")]


@dataclass(frozen=True)
class RepriceResult:
    since: dt.datetime
    until: dt.datetime
    calls: int
    cost_before: float
    cost_after: float


def hour_bounds(since: dt.datetime, until: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[since, until) widened to whole hours."""
    start = since.replace(minute=0, second=0, microsecond=0)
    end = until.replace(minute=0, second=0, microsecond=0)
    if end < until:
        end += dt.timedelta(hours=1)
    return start, end


class CallCost:
    """Calls and total cost of one tenant's range, from llm_calls (FINAL: one row per span)."""

    SQL = f"""SELECT count(), sum(ifNull(TotalCost, 0)) FROM {CALLS_TABLE} FINAL
WHERE ProjectId = {{tenant:String}} AND Timestamp >= {{since:DateTime64(9)}} AND Timestamp < {{until:DateTime64(9)}}"""

    def __init__(self, tenant_id: str, since: dt.datetime, until: dt.datetime) -> None:
        if not tenant_id:
            raise ValueError("CallCost needs a tenant")
        self.params = {"tenant": tenant_id, "since": since, "until": until}

    def fetch(self) -> tuple[int, float]:
        count, cost = get_client().query(self.SQL, parameters=self.params).result_rows[0]
        return int(count), float(cost or 0.0)


def reprice(tenant_id: str, since: dt.datetime, until: dt.datetime) -> RepriceResult:
    """Recompute costs (and every other normalised column) of one tenant's calls in [since, until)."""
    if not tenant_id:
        raise ValueError("reprice needs a tenant")
    if until <= since:
        raise ValueError("until must be after since")
    start, end = hour_bounds(since, until)
    t = Topology.current()
    client = get_client()
    client.command(f"SYSTEM RELOAD DICTIONARY keel_price_dict{t.on_cluster}")
    client.command(f"SYSTEM RELOAD DICTIONARY keel_project_dict{t.on_cluster}")
    _, before = CallCost(tenant_id, start, end).fetch()
    params = {"tenant": tenant_id, "since": start, "until": end}
    mutation = {"mutations_sync": 2}
    for table, column in [(CALLS_TABLE, "Timestamp"), *DERIVED_TABLES]:
        client.command(
            f"ALTER TABLE {t.local(table)}{t.on_cluster} DELETE WHERE ProjectId = {{tenant:String}} "
            f"AND {column} >= {{since:DateTime64(9)}} AND {column} < {{until:DateTime64(9)}}",
            parameters=params, settings=mutation,
        )
    select = normalising_select(
        SPAN_TABLE,
        where="ProjectId = {tenant:String} AND Timestamp >= {since:DateTime64(9)} "
        "AND Timestamp < {until:DateTime64(9)}",
    )
    # A span stored twice (a retried export) is priced once.
    client.command(
        f"INSERT INTO {CALLS_TABLE} ({', '.join(LLM_CALL_COLUMNS)}) "
        f"SELECT * FROM ({select}) LIMIT 1 BY TraceId, SpanId",
        parameters=params,
    )
    calls, after = CallCost(tenant_id, start, end).fetch()
    return RepriceResult(since=start, until=end, calls=calls, cost_before=before, cost_after=after)
