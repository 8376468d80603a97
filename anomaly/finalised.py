"""Keep ``series_1m`` (finalised per-minute series metrics) up to date for the settled minutes of a sweep window.

A cold sweep used to re-merge a week of per-minute t-digest states (~10M groups for 1,000 series, tens of CPU
seconds). Minutes older than the settle horizon no longer change, so each is finalised once, inside ClickHouse
(``INSERT … SELECT``, nothing crosses into Python), for every grouping; sweeps then read those minutes as floats.

Which minutes need (re)finalising is decided by comparing, per minute, the rollups' call count with the count the
ledger (``series_1m_finalised``) recorded when the minute was finalised: a minute never finalised has no ledger row,
and late spans for an already finalised minute raise its rollup count. Both are finalised (again) with a new
``version``; readers take the newest with ``FINAL``. The ledger row is written after the minute's rows for every
grouping, with the count seen *before* finalising, so a crash or a span arriving meanwhile only causes another
finalisation, never a minute marked finalised with rows missing. Concurrent runs write identical rows (collapsed by
the ReplacingMergeTree). Every statement is bound to one tenant.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from anomaly.rollups import (
    _FAMILY_COLUMNS,
    _KEYS,
    SETTLE,
    Family,
    Grouping,
    Window,
    _is_error_grouping,
    _key_expr,
    _source,
    _where,
    settled_end,
)
from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.schema import ROLLUP_1M, SERIES_1M, SERIES_1M_LEDGER

# Minutes per INSERT: bounds the aggregation's memory (minutes × series groups of t-digest states) on a backfill.
CHUNK_MINUTES = 720
# Settled minutes are finalised in batches ending on this grid: finalising one minute costs about as much as 30
# (each INSERT reads the whole day's rollup states), and between two grid points there is nothing to check.
FINALISE_EVERY = timedelta(minutes=30)

_LABEL_COLUMNS = ("Environment", "Route", "ResponseModel", "ServiceName", "ErrorType")


@dataclass(frozen=True, slots=True)
class StaleMinutesQuery:
    """Minutes of ``[start, end)`` whose rollup call count differs from the ledger's: (minute, rollup calls,
    ledger calls), the ledger count 0 for a minute never finalised."""

    tenant_id: str
    start: datetime
    end: datetime

    def sql(self) -> str:
        bounds = "ProjectId = {tenant:String} AND Minute >= {start:DateTime} AND Minute < {end:DateTime}"
        return (
            f"SELECT r.minute, r.calls, f.calls FROM (SELECT Minute AS minute, sum(Calls) AS calls FROM {ROLLUP_1M} "
            f"WHERE {bounds} GROUP BY minute) AS r LEFT JOIN (SELECT Minute AS minute, argMax(Calls, version) AS calls "
            f"FROM {SERIES_1M_LEDGER} WHERE {bounds} GROUP BY minute) AS f ON r.minute = f.minute "
            "WHERE r.calls != f.calls ORDER BY r.minute"
        )

    def run(self) -> list[tuple[datetime, int, int]]:
        params = {"tenant": self.tenant_id, "start": self.start.replace(tzinfo=None),
                  "end": self.end.replace(tzinfo=None)}
        rows = get_client().query(self.sql(), parameters=params).result_rows
        return [(minute.replace(tzinfo=UTC), int(calls), int(known)) for minute, calls, known in rows]


@dataclass(frozen=True, slots=True)
class FinaliseQuery:
    """``INSERT … SELECT``: one ``series_1m`` row per series of ``grouping`` × minute of ``minutes`` (sorted)."""

    tenant_id: str
    grouping: Grouping
    minutes: tuple[datetime, ...]
    version: int

    def sql(self) -> str:
        families = [Family.ERROR_TYPES] if _is_error_grouping(self.grouping) else [Family.TRAFFIC, Family.LATENCY]
        names = [name for family in families for name in _FAMILY_COLUMNS[family]]
        exprs = [expr for family in families for expr in _FAMILY_COLUMNS[family].values()]
        keys = _KEYS[self.grouping]
        labels = [f"any({column})" if column in keys else "''" for column in _LABEL_COLUMNS]
        return (
            f"INSERT INTO {SERIES_1M} (ProjectId, Grouping, Series, Minute, {', '.join(_LABEL_COLUMNS)}, "
            f"{', '.join(names)}, version) "
            f"SELECT {{tenant:String}}, {{grouping:String}}, {_key_expr(self.grouping)} AS s, Minute, "
            f"{', '.join(labels)}, {', '.join(exprs)}, {{version:UInt64}} FROM {_source(self.grouping)} "
            f"WHERE {_where(self.grouping)} AND has({{minutes:Array(DateTime)}}, Minute) GROUP BY s, Minute"
        )

    def parameters(self) -> dict[str, Any]:
        naive = [m.replace(tzinfo=None) for m in self.minutes]
        return {"tenant": self.tenant_id, "grouping": self.grouping.value, "version": self.version,
                "minutes": naive, "start": naive[0], "end": naive[-1] + timedelta(minutes=1)}

    def run(self) -> None:
        get_client().command(self.sql(), parameters=self.parameters())


def finalised_end(window: Window, settle: timedelta = SETTLE, now: datetime | None = None) -> datetime:
    """Where the finalised minutes of ``window`` end: its settled end, floored to the ``FINALISE_EVERY`` grid."""
    settled = settled_end(window, settle, now)
    step = int(FINALISE_EVERY.total_seconds())
    floored = datetime.fromtimestamp(int(settled.timestamp()) // step * step, UTC)
    return max(floored, window.start)


@dataclass(frozen=True, slots=True)
class Finalised:
    """What :func:`finalise_settled` guarantees: every minute of the window before ``through`` is in ``series_1m``
    with the rollups' current data."""

    through: datetime
    minutes: int  # minutes (re)finalised by this call
    late_from: datetime | None  # earliest already-finalised minute whose rollups changed (late spans), if any


# tenant -> (window start, finalised end) this process last brought up to date: until the end moves on the grid,
# a sweep has nothing to finalise, so late spans beyond the settle horizon are found within FINALISE_EVERY.
_checked: dict[str, tuple[datetime, datetime]] = {}


def finalise_settled(tenant_id: str, window: Window, settle: timedelta = SETTLE,
                     now: datetime | None = None) -> Finalised:
    """Finalise every settled minute of ``window`` (up to :func:`finalised_end`) that is not yet finalised or has
    changed since; idempotent.

    The first call for a project backfills the window (about 7 CPU seconds per day of 1,000 series); after that,
    every ``FINALISE_EVERY`` one call checks the window with one query and finalises the newly settled batch and
    any minutes that late spans changed; calls in between return at once.
    """
    if not tenant_id:
        raise ValueError("a tenant id is required for every rollup query")
    through = finalised_end(window, settle, now)
    checked = _checked.get(tenant_id)
    if checked is not None and checked[0] <= window.start and checked[1] == through:
        return Finalised(through, 0, None)
    stale = StaleMinutesQuery(tenant_id, window.start, through).run()
    late = [minute for minute, _calls, known in stale if known]
    version = time.time_ns()
    for first in range(0, len(stale), CHUNK_MINUTES):
        chunk = stale[first:first + CHUNK_MINUTES]
        minutes = tuple(minute for minute, _, _ in chunk)
        for grouping in Grouping:
            FinaliseQuery(tenant_id, grouping, minutes, version).run()
        get_client().insert(SERIES_1M_LEDGER, [[tenant_id, m.replace(tzinfo=None), calls, version]
                                               for m, calls, _ in chunk],
                            column_names=["ProjectId", "Minute", "Calls", "version"])
    _checked[tenant_id] = (window.start, through)
    return Finalised(through, len(stale), min(late) if late else None)
