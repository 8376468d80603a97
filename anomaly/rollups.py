"""Rollup reads for the detectors: one ClickHouse query per metric family, every series of a project at once.

A family query groups ``rollups_1m`` by a numeric series hash and the minute (string keys make ClickHouse's hash
table several times slower at 10M groups), re-aggregates (``sum``, ``quantilesMerge``) and comes back as Arrow
columns, which are scattered into (series × minutes) numpy matrices on a shared grid. Series labels come from one
small query. Every query is bound to the tenant; a query object cannot be built without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.schema import ROLLUP_1M, quantiles_merge

FloatArray = npt.NDArray[np.float64]


class Grouping(StrEnum):
    """What one series is: a route served by one model version, or a whole service."""

    ROUTE_VERSION = "route_version"
    SERVICE = "service"


_KEYS: dict[Grouping, tuple[str, ...]] = {
    Grouping.ROUTE_VERSION: ("Route", "ResponseModel"),
    Grouping.SERVICE: ("ServiceName",),
}
_LABELS = {"Route": "route", "ResponseModel": "model_version", "ServiceName": "service"}


class Family(StrEnum):
    TRAFFIC = "traffic"
    LATENCY = "latency"


# column name -> ClickHouse aggregate over rollups_1m
_FAMILY_COLUMNS: dict[Family, dict[str, str]] = {
    Family.TRAFFIC: {
        "calls": "toFloat64(sum(Calls))",
        "errors": "toFloat64(sum(Errors))",
        "streamed": "toFloat64(sum(Streamed))",
        "input_tokens": "toFloat64(sum(InputTokens))",
        "output_tokens": "toFloat64(sum(OutputTokens))",
        "cost": "sum(Cost)",
        "unpriced": "toFloat64(sum(UnpricedCalls))",
        "duration_ms": "sum(DurationMsSum)",
    },
    Family.LATENCY: {
        # One merge per state column; the quantile array is indexed afterwards (0.5, 0.9, 0.95, 0.99).
        "latency_p95": f"({quantiles_merge('LatencyQ')} AS lq)[3]",
        "latency_p99": "lq[4]",
        "ttft_p95": f"{quantiles_merge('TtftQ')}[3]",
    },
}


def _key_expr(grouping: Grouping) -> str:
    return f"cityHash64({', '.join(_KEYS[grouping])})"


@dataclass(frozen=True, slots=True)
class Window:
    """``minutes`` whole minutes ending (exclusive) at ``end``; the running minute is never included."""

    end: datetime
    minutes: int

    @classmethod
    def ending_now(cls, minutes: int, now: datetime | None = None) -> Window:
        now = now or datetime.now(UTC)
        return cls(now.astimezone(UTC).replace(second=0, microsecond=0, tzinfo=UTC), minutes)

    @property
    def start(self) -> datetime:
        return self.end - timedelta(minutes=self.minutes)

    def timestamps(self) -> npt.NDArray[np.int64]:
        return int(self.start.timestamp()) + 60 * np.arange(self.minutes, dtype=np.int64)

    def parameters(self, tenant_id: str) -> dict[str, Any]:
        naive = {"start": self.start.replace(tzinfo=None), "end": self.end.replace(tzinfo=None)}
        return {"tenant": tenant_id, **naive}


@dataclass(frozen=True, slots=True)
class SeriesLabelsQuery:
    """The label tuple behind every series hash seen in the window."""

    tenant_id: str
    grouping: Grouping
    window: Window

    def sql(self) -> str:
        keys = _KEYS[self.grouping]
        return (
            f"SELECT {_key_expr(self.grouping)} AS s, {', '.join(keys)}, toFloat64(sum(Calls)) AS calls "
            f"FROM {ROLLUP_1M} WHERE ProjectId = {{tenant:String}} "
            "AND Minute >= {start:DateTime} AND Minute < {end:DateTime} "
            f"GROUP BY s, {', '.join(keys)} ORDER BY {', '.join(keys)}"
        )

    def run(self) -> list[tuple[int, dict[str, str], float]]:
        rows = get_client().query(self.sql(), parameters=self.window.parameters(self.tenant_id)).result_rows
        names = [_LABELS[k] for k in _KEYS[self.grouping]]
        return [(int(r[0]), dict(zip(names, r[1:-1], strict=True)), float(r[-1])) for r in rows]


@dataclass(frozen=True, slots=True)
class FamilyQuery:
    """One metric family for every series of the tenant: rows (series hash, minute index, metrics…)."""

    tenant_id: str
    grouping: Grouping
    family: Family
    window: Window

    def sql(self) -> str:
        columns = ", ".join(f"{expr} AS {name}" for name, expr in _FAMILY_COLUMNS[self.family].items())
        return (
            f"SELECT {_key_expr(self.grouping)} AS s, "
            "toUInt32(intDiv(toUInt32(Minute) - toUInt32({start:DateTime}), 60)) AS m, "
            f"{columns} FROM {ROLLUP_1M} WHERE ProjectId = {{tenant:String}} "
            "AND Minute >= {start:DateTime} AND Minute < {end:DateTime} GROUP BY s, m"
        )

    def run(self, series_index: dict[int, int]) -> dict[str, FloatArray]:
        """Matrices (len(series_index) × window.minutes); NaN where a series has no row that minute."""
        table = get_client().query_arrow(self.sql(), parameters=self.window.parameters(self.tenant_id))
        names = list(_FAMILY_COLUMNS[self.family])
        shape = (len(series_index), self.window.minutes)
        out = {name: np.full(shape, np.nan) for name in names}
        if table.num_rows == 0 or not series_index:
            return out
        hashes = np.asarray(table.column("s").to_numpy(), dtype=np.uint64)
        minutes = np.asarray(table.column("m").to_numpy(), dtype=np.int64)
        known = np.fromiter(series_index.keys(), dtype=np.uint64, count=len(series_index))
        rows_for_known = np.fromiter(series_index.values(), dtype=np.int64, count=len(series_index))
        order = np.argsort(known)
        pos = np.searchsorted(known[order], hashes)
        pos = np.minimum(pos, known.size - 1)
        found = (known[order][pos] == hashes) & (minutes >= 0) & (minutes < shape[1])
        rows = rows_for_known[order][pos[found]]
        cols = minutes[found]
        for name in names:
            values = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
            out[name][rows, cols] = values[found]
        return out


@dataclass(slots=True)
class SeriesMatrix:
    """Every series of one grouping on one grid: labels per row, metric matrices (series × minutes)."""

    grouping: Grouping
    window: Window
    keys: list[dict[str, str]] = field(default_factory=list)
    total_calls: FloatArray = field(default_factory=lambda: np.zeros(0))
    columns: dict[str, FloatArray] = field(default_factory=dict)

    @property
    def timestamps(self) -> npt.NDArray[np.int64]:
        return self.window.timestamps()

    def __len__(self) -> int:
        return len(self.keys)


def load_series(tenant_id: str, grouping: Grouping, window: Window, families: set[Family]) -> SeriesMatrix:
    """Load the requested families for every series of the tenant seen in the window."""
    if not tenant_id:
        raise ValueError("a tenant id is required for every rollup query")
    labels = SeriesLabelsQuery(tenant_id, grouping, window).run()
    matrix = SeriesMatrix(grouping, window, [lab for _, lab, _ in labels], np.array([c for *_, c in labels]))
    index = {h: i for i, (h, _, _) in enumerate(labels)}
    for family in sorted(families):
        matrix.columns.update(FamilyQuery(tenant_id, grouping, family, window).run(index))
    return matrix
