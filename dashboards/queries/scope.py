"""The one place a dashboard query gets its tenant, its window and its filters as bound parameters."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from dashboards.filters import DIMENSIONS, Filters
from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.schema import QUANTILES, ROLLUP_1H, ROLLUP_1M

# Rollups hold t-digest quantile states over QUANTILES; these index into the merged array.
P50, P90, P95, P99 = 0, 1, 2, 3


@dataclass(frozen=True)
class RollupSource:
    table: str
    time_column: str
    grain_seconds: int


MINUTE = RollupSource(ROLLUP_1M, "Minute", 60)
HOUR = RollupSource(ROLLUP_1H, "Hour", 3600)


def source_for(span: timedelta) -> RollupSource:
    """Per-minute rollups up to a day, hourly beyond (a 30-day chart reads ~720 rows per series, not 43,200)."""
    return MINUTE if span <= timedelta(hours=24) else HOUR


def bucket_seconds(span: timedelta) -> int:
    """Chart resolution: roughly 60-170 points whatever the range."""
    seconds = span.total_seconds()
    for limit, step in ((3600, 60), (6 * 3600, 300), (24 * 3600, 900), (7 * 86400, 3600)):
        if seconds <= limit:
            return step
    return 6 * 3600


@dataclass(frozen=True)
class Scope:
    """A project (by ClickHouse tenant key) and the page's filters; queries cannot be built without one."""

    tenant_id: str
    filters: Filters

    def __post_init__(self) -> None:
        if not self.tenant_id:
            raise ValueError("a dashboard query needs the project's tenant id")

    @property
    def rollup(self) -> RollupSource:
        return source_for(self.filters.span)

    def where(self, time_column: str, *, skip: tuple[str, ...] = (), with_time: bool = True,
              grain_seconds: int = 60) -> tuple[str, dict[str, Any]]:
        """``ProjectId = … AND time window AND Column = …`` with parameters; ``skip`` drops named filters.

        The window start is floored to the source's grain so the first partial bucket is included.
        """
        clauses = ["ProjectId = {tenant:String}"]
        params: dict[str, Any] = {"tenant": self.tenant_id}
        if with_time:
            start = self.filters.start.replace(tzinfo=None, second=0, microsecond=0)
            if grain_seconds >= 3600:
                start = start.replace(minute=0)
            clauses.append(f"{time_column} >= {{start:DateTime}}")
            clauses.append(f"{time_column} < {{end:DateTime}}")
            params["start"] = start
            params["end"] = self.filters.end.replace(tzinfo=None)
        for name, column in DIMENSIONS.items():
            value = self.filters.get(name)
            if value and name not in skip:
                clauses.append(f"{column} = {{f_{name}:String}}")
                params[f"f_{name}"] = value
        return " AND ".join(clauses), params

    def rollup_where(self, *, skip: tuple[str, ...] = ()) -> tuple[RollupSource, str, dict[str, Any]]:
        src = self.rollup
        where, params = self.where(src.time_column, skip=skip, grain_seconds=src.grain_seconds)
        return src, where, params


F = TypeVar("F", bound=Callable[..., Any])
CACHE_SECONDS = 60


def cached(fn: F) -> F:
    """Cache a rollup read for a minute when its window is longer than a day (or it is a fixed 30-day read).

    Long windows merge quantile states for every stored sample (tens of MB at 10M calls/month) yet move slowly:
    a minute-old 30-day p95 is as true as a fresh one. Keys hold the tenant, the filters, the arguments and the
    minute, so nothing is shared across projects or filters and the cache expires with the minute.
    """

    @wraps(fn)
    def wrapper(scope: Scope, *args: Any, **kwargs: Any) -> Any:
        if scope.filters.span <= timedelta(hours=24) and fn.__name__ != "spend":
            return fn(scope, *args, **kwargs)
        from django.core.cache import cache

        f = scope.filters
        raw = repr((fn.__module__, fn.__name__, scope.tenant_id, f.range_key, sorted(f.active().items()),
                    int(f.start.timestamp()) // 60 if f.range_key == "custom" else 0,
                    int(f.end.timestamp()) // 60, args, sorted(kwargs.items())))
        key = "keel-rollup:" + hashlib.sha256(raw.encode()).hexdigest()
        hit = cache.get(key)
        if hit is None:
            hit = fn(scope, *args, **kwargs)
            cache.set(key, hit, CACHE_SECONDS)
        return hit

    return wrapper  # type: ignore[return-value]


def run(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in get_client().query(sql, parameters=params).result_rows]


__all__ = ["HOUR", "MINUTE", "P50", "P90", "P95", "P99", "QUANTILES", "Scope", "bucket_seconds", "cached", "run",
           "source_for"]
