"""Usage per model / route / service / provider over a window, re-aggregated from the rollups (never raw calls).

Windows whose bounds fall on whole hours read ``rollups_1h``; others read ``rollups_1m`` with the bounds
truncated to the minute (the rollups' resolution).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingestion.clickhouse.schema import ROLLUP_1H, ROLLUP_1M
from ingestion.selectors import TenantQuery

GROUP_COLUMNS = {"model": "ResponseModel", "route": "Route", "service": "ServiceName", "provider": "Provider"}


@dataclass(frozen=True)
class UsageRow:
    key: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    reasoning_tokens: int
    cost_usd: float
    unpriced_calls: int


@dataclass(frozen=True)
class Usage:
    since: datetime
    until: datetime
    group_by: str
    granularity: str  # "minute" | "hour"
    groups: list[UsageRow]

    @property
    def totals(self) -> UsageRow:
        def total(field: str) -> Any:
            return sum(getattr(g, field) for g in self.groups)

        return UsageRow("", total("calls"), total("errors"), total("input_tokens"), total("output_tokens"),
                        total("cache_read_tokens"), total("reasoning_tokens"), float(total("cost_usd")),
                        total("unpriced_calls"))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class UsageQuery(TenantQuery):
    def grouped(self, since: datetime, until: datetime, group_by: str) -> Usage:
        column = GROUP_COLUMNS.get(group_by)
        if column is None:
            raise ValueError(f"group_by must be one of {', '.join(GROUP_COLUMNS)}")
        since = _utc(since).replace(second=0, microsecond=0)
        until = _utc(until).replace(second=0, microsecond=0)
        hourly = since.minute == 0 and until.minute == 0
        table, time_column = (ROLLUP_1H, "Hour") if hourly else (ROLLUP_1M, "Minute")
        sql = f"""SELECT {column} AS k, sum(Calls), sum(Errors), sum(InputTokens), sum(OutputTokens),
       sum(CacheReadTokens), sum(ReasoningTokens), sum(Cost), sum(UnpricedCalls)
FROM {table}
WHERE ProjectId = {{tenant:String}} AND {time_column} >= toDateTime({{since:Int64}}, 'UTC')
  AND {time_column} < toDateTime({{until:Int64}}, 'UTC')
GROUP BY k
ORDER BY sum(Cost) DESC, sum(Calls) DESC, k"""
        rows = self.rows(sql, {"since": int(since.timestamp()), "until": int(until.timestamp())})
        groups = [UsageRow(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]), float(r[7]),
                           int(r[8])) for r in rows]
        return Usage(since, until, group_by, "hour" if hourly else "minute", groups)
