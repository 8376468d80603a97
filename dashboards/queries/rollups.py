"""Chart and KPI reads over the rollups (always re-aggregated: ``sum(...)``, ``quantiles_merge(...)``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboards.filters import DIMENSIONS
from dashboards.queries.scope import HOUR, P50, P95, P99, Scope, bucket_seconds, cached, run
from ingestion.clickhouse.schema import quantiles_merge

_MERGE_LAT = quantiles_merge("LatencyQ")
_MERGE_TTFT = quantiles_merge("TtftQ")


def _q(values: Any) -> list[float | None]:
    """Merged quantiles with NaN (no samples, e.g. no streamed calls) as None."""
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in (values or [])] or [
        None, None, None, None]


def _utc(value: datetime) -> datetime:
    """ClickHouse DateTime columns come back naive; they are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class _CallStats:
    """Ratios shared by totals and breakdown rows (both carry calls, errors and merged latency quantiles)."""

    calls: int
    errors: int
    latency: list[float | None]

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def p50(self) -> float | None:
        return self.latency[P50]

    @property
    def p95(self) -> float | None:
        return self.latency[P95]


@dataclass(frozen=True)
class Totals(_CallStats):
    calls: int
    errors: int
    cost: float
    unpriced_calls: int
    input_tokens: int
    output_tokens: int
    duration_ms_sum: float
    latency: list[float | None]
    ttft: list[float | None]

    @property
    def unpriced_share(self) -> float | None:
        return self.unpriced_calls / self.calls if self.calls else None

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per second of call time (sum of tokens over sum of durations)."""
        return self.output_tokens / (self.duration_ms_sum / 1000) if self.duration_ms_sum else None

    @property
    def p99(self) -> float | None:
        return self.latency[P99]

    @property
    def ttft_p95(self) -> float | None:
        return self.ttft[P95]


@cached
def totals(scope: Scope) -> Totals:
    src, where, params = scope.rollup_where()
    row = run(
        f"""SELECT sum(Calls), sum(Errors), sum(Cost), sum(UnpricedCalls), sum(InputTokens), sum(OutputTokens),
        sum(DurationMsSum), {_MERGE_LAT}, {_MERGE_TTFT} FROM {src.table} WHERE {where}""",
        params,
    )[0]
    return Totals(int(row[0] or 0), int(row[1] or 0), float(row[2] or 0), int(row[3] or 0), int(row[4] or 0),
                  int(row[5] or 0), float(row[6] or 0), _q(row[7]), _q(row[8]))


@dataclass(frozen=True)
class Spend:
    today: float
    last_7d: float
    last_30d: float
    month_to_date: float
    month_forecast: float


@cached
def spend(scope: Scope, now: datetime | None = None) -> Spend:
    """Spend windows independent of the page's range (dimension filters still apply), with a month-end forecast.

    The forecast extrapolates the last 7 days' daily rate over the rest of the month, which reacts to recent
    change faster than the month-to-date average.
    """
    now = (now or datetime.now(UTC)).replace(tzinfo=None)
    where, params = scope.where("Hour", with_time=False)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    params |= {"day": day, "week": now - timedelta(days=7), "month_ago": now - timedelta(days=30), "month": month}
    row = run(
        f"""SELECT sumIf(Cost, Hour >= {{day:DateTime}}), sumIf(Cost, Hour >= {{week:DateTime}}),
        sumIf(Cost, Hour >= {{month_ago:DateTime}}), sumIf(Cost, Hour >= {{month:DateTime}})
        FROM {HOUR.table} WHERE {where} AND Hour >= least({{month_ago:DateTime}}, {{month:DateTime}})""",
        params,
    )[0]
    today, week, last30, mtd = (float(v or 0) for v in row)
    next_month = (month + timedelta(days=32)).replace(day=1)
    remaining_days = max((next_month - now).total_seconds() / 86400, 0)
    return Spend(today, week, last30, mtd, mtd + week / 7 * remaining_days)


@dataclass(frozen=True)
class BreakdownRow(_CallStats):
    key: str
    calls: int
    errors: int
    cost: float
    unpriced_calls: int
    input_tokens: int
    output_tokens: int
    latency: list[float | None]

    @property
    def cost_per_call(self) -> float | None:
        return self.cost / self.calls if self.calls else None

    @property
    def input_per_call(self) -> float | None:
        return self.input_tokens / self.calls if self.calls else None

    @property
    def output_per_call(self) -> float | None:
        return self.output_tokens / self.calls if self.calls else None


@cached
def breakdown(scope: Scope, dimension: str, *, limit: int = 20, order: str = "cost",
              latency: bool = True) -> list[BreakdownRow]:
    """Totals grouped by one dimension (URL name, e.g. ``model``), biggest first."""
    column = DIMENSIONS[dimension]
    src, where, params = scope.rollup_where()
    order_by = {"cost": "3 DESC, 1", "calls": "2 DESC, 1"}[order]
    rows = run(
        f"""SELECT {column}, sum(Calls), sum(Cost), sum(Errors), sum(UnpricedCalls), sum(InputTokens),
        sum(OutputTokens), {_MERGE_LAT if latency else "[]"} FROM {src.table} WHERE {where}
        GROUP BY {column} ORDER BY {order_by} LIMIT {int(limit)}""",
        params,
    )
    return [BreakdownRow(str(r[0]), int(r[1]), int(r[3]), float(r[2]), int(r[4]), int(r[5]), int(r[6]), _q(r[7]))
            for r in rows]


@cached
def breakdowns(scope: Scope, dimensions: list[str], *, limit: int = 20,
               latency: bool = True) -> dict[str, list[BreakdownRow]]:
    """Several ``breakdown``s (by cost) from one scan of the rollup, with ``GROUPING SETS``."""
    columns = [DIMENSIONS[d] for d in dimensions]
    src, where, params = scope.rollup_where()
    sets = ", ".join(f"({c})" for c in columns)
    which = "multiIf(" + ", ".join(f"grouping({c}) = 0, {i}" for i, c in enumerate(columns[:-1])) + \
        f", {len(columns) - 1})" if len(columns) > 1 else "0"
    key = "multiIf(" + ", ".join(f"grouping({c}) = 0, toString({c})" for c in columns[:-1]) + \
        f", toString({columns[-1]}))" if len(columns) > 1 else f"toString({columns[0]})"
    rows = run(
        f"""SELECT {which} AS g, {key} AS k, sum(Calls), sum(Cost) AS c, sum(Errors), sum(UnpricedCalls),
        sum(InputTokens), sum(OutputTokens), {_MERGE_LAT if latency else "[]"} FROM {src.table} WHERE {where}
        GROUP BY GROUPING SETS ({sets}) ORDER BY g, c DESC, k LIMIT {int(limit)} BY g""",
        params,
    )
    out: dict[str, list[BreakdownRow]] = {d: [] for d in dimensions}
    for r in rows:
        out[dimensions[int(r[0])]].append(BreakdownRow(str(r[1]), int(r[2]), int(r[4]), float(r[3]), int(r[5]),
                                                       int(r[6]), int(r[7]), _q(r[8])))
    return out


@dataclass(frozen=True)
class SeriesPoint:
    bucket: datetime
    key: str
    calls: int
    errors: int
    cost: float
    output_tokens: int
    duration_ms_sum: float
    latency: list[float | None]
    ttft: list[float | None]


@cached
def series(scope: Scope, split: str | None = None, *, top: int = 8, latency: bool = True,
           ttft: bool = True) -> list[SeriesPoint]:
    """Time-bucketed metrics, optionally one series per value of ``split`` (the ``top`` busiest values).

    Quantile merges are the expensive part of a rollup read (they touch every stored sample), so callers that
    chart only counts and cost switch them off.
    """
    src, where, params = scope.rollup_where()
    step = max(bucket_seconds(scope.filters.span), src.grain_seconds)
    key = DIMENSIONS[split] if split else "''"
    top_clause = ""
    if split:
        top_clause = (f" AND {key} IN (SELECT {key} FROM {src.table} WHERE {where} GROUP BY {key} "
                      f"ORDER BY sum(Calls) DESC LIMIT {int(top)})")
    rows = run(
        f"""SELECT toStartOfInterval({src.time_column}, INTERVAL {step} SECOND) AS b, {key} AS k, sum(Calls),
        sum(Errors), sum(Cost), sum(OutputTokens), sum(DurationMsSum), {_MERGE_LAT if latency else "[]"},
        {_MERGE_TTFT if ttft else "[]"}
        FROM {src.table} WHERE {where}{top_clause} GROUP BY b, k ORDER BY k, b""",
        params,
    )
    return [SeriesPoint(_utc(r[0]), str(r[1]), int(r[2]), int(r[3]), float(r[4]), int(r[5]), float(r[6]), _q(r[7]),
                        _q(r[8])) for r in rows]


@cached
def error_types(scope: Scope) -> list[tuple[str, int]]:
    """Errors by type (``_none`` is errors without a type attribute)."""
    src, where, params = scope.rollup_where()
    rows = run(
        f"""SELECT k, sum(v) FROM (SELECT sumMap(ErrorTypes) AS m FROM {src.table} WHERE {where})
        ARRAY JOIN mapKeys(m) AS k, mapValues(m) AS v WHERE v > 0 GROUP BY k ORDER BY 2 DESC LIMIT 20""",
        params,
    )
    return [("(untyped)" if r[0] == "_none" else str(r[0]), int(r[1])) for r in rows]


@cached
def unpriced_models(scope: Scope) -> list[tuple[str, str, int]]:
    """(provider, model, unpriced calls) for every model that had calls without a price in the window."""
    src, where, params = scope.rollup_where()
    rows = run(
        f"""SELECT Provider, ResponseModel, sum(UnpricedCalls) AS u FROM {src.table} WHERE {where}
        GROUP BY Provider, ResponseModel HAVING u > 0 ORDER BY u DESC LIMIT 50""",
        params,
    )
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def dimension_values(scope: Scope) -> dict[str, list[str]]:
    """Values seen for each filter in the window (the filter dropdowns); ignores the filters themselves.

    Cached for a minute per project and range: dropdown choices need not be live, and every page shows them.
    """
    from django.core.cache import cache

    key = f"keel-dims:{scope.tenant_id}:{scope.filters.range_key}:{int(scope.filters.end.timestamp()) // 60}"
    cached = cache.get(key)
    if cached is None:
        cached = _dimension_values(scope)
        cache.set(key, cached, 60)
    return cached


def _dimension_values(scope: Scope) -> dict[str, list[str]]:
    src = scope.rollup
    where, params = scope.where(src.time_column, skip=tuple(DIMENSIONS), grain_seconds=src.grain_seconds)
    columns = list(DIMENSIONS.items())
    select = ", ".join(f"arraySort(groupUniqArray(100)({col}))" for _, col in columns)
    row = run(f"SELECT {select} FROM {src.table} WHERE {where}", params)[0]
    return {name: [v for v in values if v] for (name, _), values in zip(columns, row, strict=True)}


@cached
def slow_bucket_share(scope: Scope, route: str, metric: str, threshold: float) -> tuple[int, int]:
    """(buckets over ``threshold``, buckets with traffic) for a route's per-minute/hour p95 of ``metric``.

    A time-slice SLO ("p95 latency < X in 99% of minutes") is what the rollups can answer exactly.
    """
    column = {"latency_p95": "LatencyQ", "ttft_p95": "TtftQ"}[metric]
    src, where, params = scope.rollup_where(skip=("route",))
    params["slo_route"] = route
    params["threshold"] = float(threshold)
    row = run(
        f"""SELECT countIf(q[3] > {{threshold:Float64}}), count() FROM (
        SELECT {src.time_column}, {quantiles_merge(column)} AS q FROM {src.table}
        WHERE {where} AND Route = {{slo_route:String}} GROUP BY {src.time_column}) WHERE NOT isNaN(q[3])""",
        params,
    )[0]
    return int(row[0]), int(row[1])
