"""Spend per user: the per-user hourly rollup for the window's whole hours, ``llm_calls`` only for its ragged edges.

Users are too many for the dimension rollups, so ``rollups_user_1h`` keeps project × hour × user × environment
only. A window filtered on another dimension (service, route, model …) cannot be answered from it and groups the
calls in the window instead; the result says so, and the Cost page shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dashboards.filters import DIMENSIONS
from dashboards.queries.scope import Scope, cached, run
from ingestion.clickhouse.schema import CALLS_TABLE, ROLLUP_USER_1H

# Filter dimensions the per-user rollup carries (URL names, as in ``DIMENSIONS``).
ROLLUP_FILTERS = ("environment",)
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class UserSpend:
    user_id: str
    calls: int
    cost: float


@dataclass(frozen=True)
class UsersSpend:
    rows: list[UserSpend]
    from_rollup: bool
    # Filters the rollup does not carry, which made this read group the window's calls.
    unrolled_filters: tuple[str, ...] = ()


def whole_hours(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The first and last hour boundaries inside [start, end), or None when no whole hour fits."""
    first = start.replace(minute=0, second=0, microsecond=0)
    if first < start:
        first += _HOUR
    last = end.replace(minute=0, second=0, microsecond=0)
    return (first, last) if first < last else None


# Only what the chart shows: a 30-day read touches every rollup row, so each extra column is ~4 M more values.
_CALL_SUMS = "count() AS calls, sum(ifNull(TotalCost, 0)) AS cost"
_ROLLUP_SUMS = "sum(Calls) AS calls, sum(Cost) AS cost"


@cached
def spend_by_user(scope: Scope, limit: int = 20) -> UsersSpend:
    """(user, calls, cost) for the biggest spenders in the window, biggest first.

    The window is exact: whole hours come from the rollup, the partial hours at either end from the calls
    (at most two hours of them), in one query.
    """
    unrolled = tuple(name for name, value in scope.filters.active().items()
                     if name in DIMENSIONS and name not in ROLLUP_FILTERS)
    where, params = scope.where("Timestamp", with_time=False)
    start = scope.filters.start.replace(tzinfo=None, microsecond=0)
    end = scope.filters.end.replace(tzinfo=None, microsecond=0)
    params |= {"start": start, "end": end}
    hours = None if unrolled else whole_hours(start, end)
    if hours is None:
        parts = [f"SELECT UserId, {_CALL_SUMS} FROM {CALLS_TABLE} WHERE {where} "
                 "AND Timestamp >= {start:DateTime} AND Timestamp < {end:DateTime} GROUP BY UserId"]
    else:
        params |= {"first_hour": hours[0], "last_hour": hours[1]}
        parts = [
            f"SELECT UserId, {_ROLLUP_SUMS} FROM {ROLLUP_USER_1H} WHERE {where} "
            "AND Hour >= {first_hour:DateTime} AND Hour < {last_hour:DateTime} GROUP BY UserId",
            f"SELECT UserId, {_CALL_SUMS} FROM {CALLS_TABLE} WHERE {where} "
            "AND ((Timestamp >= {start:DateTime} AND Timestamp < {first_hour:DateTime})"
            " OR (Timestamp >= {last_hour:DateTime} AND Timestamp < {end:DateTime})) GROUP BY UserId",
        ]
    rows = run(
        f"""SELECT UserId, sum(calls), sum(cost) AS c
        FROM ({' UNION ALL '.join(parts)}) GROUP BY UserId ORDER BY c DESC, UserId LIMIT {int(limit)}""",
        params,
    )
    return UsersSpend([_row(r) for r in rows], from_rollup=hours is not None, unrolled_filters=unrolled)


def _row(r: tuple[Any, ...]) -> UserSpend:
    return UserSpend(str(r[0]) or "(no user)", int(r[1]), float(r[2]))
