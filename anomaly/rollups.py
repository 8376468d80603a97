"""Rollup reads for the detectors: one ClickHouse query per grouping for its metric families, every series at once.

A family query groups ``rollups_1m`` by a numeric series hash and the minute (string keys make ClickHouse's hash
table several times slower at 10M groups), re-aggregates (``sum``, ``quantilesMerge``) and is streamed back in
Native blocks of numpy columns, which are scattered into (series × minutes) numpy matrices on a shared grid.
Series labels come from one small query. Every query is bound to the tenant; a query object cannot be built without one.

With ``settled_until`` (what :func:`anomaly.finalised.finalise_settled` guarantees is finalised), the minutes before
it are read as plain floats from ``series_1m`` and only the rest is re-aggregated from ``rollups_1m``: the same
matrix, without merging a week of t-digest states.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from ingestion.clickhouse.client import get_client, numpy_column_blocks
from ingestion.clickhouse.schema import ROLLUP_1M, SERIES_1M, quantiles_merge

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class Grouping(StrEnum):
    """What one series is: a route served by one model version, or a whole service, each in one environment.

    The ``*_ERRORS`` groupings split those series by error type (one row per series × error type that occurred,
    at most ``TOP_ERROR_TYPES`` per series); their only family is ``ERROR_TYPES`` and the rate's denominator is the
    parent series' calls.
    """

    ROUTE_VERSION = "route_version"
    SERVICE = "service"
    ROUTE_VERSION_ERRORS = "route_version_errors"
    SERVICE_ERRORS = "service_errors"


_KEYS: dict[Grouping, tuple[str, ...]] = {
    Grouping.ROUTE_VERSION: ("Environment", "Route", "ResponseModel"),
    Grouping.SERVICE: ("Environment", "ServiceName"),
    Grouping.ROUTE_VERSION_ERRORS: ("Environment", "Route", "ResponseModel", "ErrorType"),
    Grouping.SERVICE_ERRORS: ("Environment", "ServiceName", "ErrorType"),
}
_LABELS = {"Environment": "environment", "Route": "route", "ResponseModel": "model_version", "ServiceName": "service",
           "ErrorType": "error_type"}
# The series an error-type series divides by (same labels without the error type).
ERROR_PARENT: dict[Grouping, Grouping] = {
    Grouping.ROUTE_VERSION_ERRORS: Grouping.ROUTE_VERSION,
    Grouping.SERVICE_ERRORS: Grouping.SERVICE,
}
# Bounded cardinality: per series only the error types most frequent recently (then over the window) are watched.
TOP_ERROR_TYPES = 5
ERROR_RANK_MINUTES = 360


def labels_of(grouping: Grouping) -> tuple[str, ...]:
    """The series-key names of a grouping, in key order (``environment``, ``route``, …)."""
    return tuple(_LABELS[k] for k in _KEYS[grouping])


def key_columns(grouping: Grouping) -> tuple[str, ...]:
    """The ClickHouse columns that identify a series of a grouping, in the order of :func:`labels_of` (the drift
    jobs group ``llm_calls`` samples by them, so their series are the sweep's series)."""
    return _KEYS[grouping]


class Family(StrEnum):
    TRAFFIC = "traffic"
    LATENCY = "latency"
    ERROR_TYPES = "error_types"


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
    Family.ERROR_TYPES: {"type_errors": "toFloat64(sum(ErrorCount))"},
}


def _is_error_grouping(grouping: Grouping) -> bool:
    return grouping in ERROR_PARENT


def presence_family(grouping: Grouping) -> Family:
    """The family whose first column says a series had a rollup row that minute (what the cache keys on)."""
    return Family.ERROR_TYPES if _is_error_grouping(grouping) else Family.TRAFFIC


def presence_column(grouping: Grouping) -> str:
    return next(iter(_FAMILY_COLUMNS[presence_family(grouping)]))


def _source(grouping: Grouping) -> str:
    """FROM clause: error-type groupings unfold the ``ErrorTypes`` map into one row per type."""
    if _is_error_grouping(grouping):
        return f"{ROLLUP_1M} ARRAY JOIN mapKeys(ErrorTypes) AS ErrorType, mapValues(ErrorTypes) AS ErrorCount"
    return ROLLUP_1M


Only = tuple[tuple[str, str], ...]  # (series-key label, value) pairs narrowing a query to some series
_COLUMN_OF = {label: column for column, label in _LABELS.items()}


def _only_where(grouping: Grouping, only: Only) -> str:
    where = ""
    for i, (label, _value) in enumerate(only):
        column = _COLUMN_OF.get(label)
        if column not in _KEYS[grouping]:
            raise ValueError(f"{label!r} is not a series label of {grouping}")
        where += f" AND {column} = {{only{i}:String}}"
    return where


def _where(grouping: Grouping, only: Only = (), since: str = "start") -> str:
    """Rollup rows of the tenant from ``{since}`` (the window start, or where the finalised minutes end) to the
    window end."""
    where = f"ProjectId = {{tenant:String}} AND Minute >= {{{since}:DateTime}} AND Minute < {{end:DateTime}}"
    if _is_error_grouping(grouping):
        # '_none' carries the error-free calls (always 0 errors); a type with no errors that minute is no row.
        where += " AND ErrorCount > 0 AND ErrorType != '_none'"
    return where + _only_where(grouping, only)


def _finalised_where(grouping: Grouping, only: Only = ()) -> str:
    """``series_1m`` rows of the tenant's grouping from the window start to where the finalised minutes end."""
    return ("ProjectId = {tenant:String} AND Grouping = {grouping:String} AND Minute >= {start:DateTime} "
            "AND Minute < {settled:DateTime}" + _only_where(grouping, only))


def _only_parameters(only: Only) -> dict[str, str]:
    return {f"only{i}": value for i, (_label, value) in enumerate(only)}


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

    def split_parameters(self, tenant_id: str, grouping: Grouping, settled_until: datetime | None) -> dict[str, Any]:
        """The window's parameters plus ``settled``: minutes before it come from ``series_1m`` (none without
        ``settled_until``)."""
        settled = self.start if settled_until is None else min(max(settled_until, self.start), self.end)
        return {**self.parameters(tenant_id), "grouping": grouping.value, "settled": settled.replace(tzinfo=None)}


# Rollup minutes older than this are settled: their spans have arrived (late ones are found and re-finalised).
SETTLE = timedelta(hours=2)


def settled_end(window: Window, settle: timedelta = SETTLE, now: datetime | None = None) -> datetime:
    """Where the settled minutes of ``window`` end: ``settle`` before its end, or before the clock if that is
    earlier (a window ending in the future has nothing settled past now)."""
    clock = Window.ending_now(0, now).end
    return max(min(window.end, clock) - settle, window.start)


@dataclass(frozen=True, slots=True)
class SeriesLabelsQuery:
    """The label tuple behind every series hash seen in the window, with its calls (error types: its errors).

    Totals add the finalised minutes' sums to the re-aggregated rest (integer counts, so the same numbers).
    ``totals=False`` (not for error-type groupings, whose ranking needs them) returns 0 instead and reads
    ``series_1m`` without ``FINAL`` (every version of a minute has the same series, so the set is the same): for a
    caller that sums the calls matrix it loads anyway."""

    tenant_id: str
    grouping: Grouping
    window: Window
    only: Only = ()
    settled_until: datetime | None = None
    totals: bool = True

    def sql(self) -> str:
        keys = ", ".join(_KEYS[self.grouping])
        error = _is_error_grouping(self.grouping)
        if not self.totals:
            if error:
                raise ValueError("error-type series are ranked by their totals")
            any_keys = ", ".join(f"any({k})" for k in _KEYS[self.grouping])
            return (
                f"SELECT s, {keys}, toFloat64(0) AS calls FROM (SELECT {_key_expr(self.grouping)} AS s, {keys} "
                f"FROM {_source(self.grouping)} WHERE {_where(self.grouping, self.only, 'settled')} GROUP BY s, {keys} "
                f"UNION ALL SELECT Series, {any_keys} FROM {SERIES_1M} "
                f"WHERE {_finalised_where(self.grouping, self.only)} GROUP BY Series) "
                f"GROUP BY s, {keys} ORDER BY {keys}"
            )
        stored, count = ("type_errors", "ErrorCount") if error else ("calls", "Calls")
        recent = (", sumIf(type_errors, Minute >= {recent:DateTime})" if error else "",
                  ", toFloat64(sumIf(ErrorCount, Minute >= {recent:DateTime})) AS r" if error else "")
        any_keys = ", ".join(f"any({k})" for k in _KEYS[self.grouping])  # a hash has one label tuple
        parts = (
            f"SELECT {_key_expr(self.grouping)} AS s, {keys}, toFloat64(sum({count})) AS n{recent[1]} "
            f"FROM {_source(self.grouping)} WHERE {_where(self.grouping, self.only, 'settled')} GROUP BY s, {keys} "
            f"UNION ALL SELECT Series, {any_keys}, sum({stored}){recent[0]} FROM {SERIES_1M} FINAL "
            f"WHERE {_finalised_where(self.grouping, self.only)} GROUP BY Series"
        )
        if not error:
            return f"SELECT s, {keys}, sum(n) AS calls FROM ({parts}) GROUP BY s, {keys} ORDER BY {keys}"
        parent = ", ".join(_KEYS[ERROR_PARENT[self.grouping]])
        return (
            f"SELECT s, {keys}, calls FROM (SELECT s, {keys}, sum(n) AS calls, sum(r) AS recent FROM ({parts}) "
            f"GROUP BY s, {keys} ORDER BY recent DESC, calls DESC, {keys} LIMIT {{top:UInt32}} BY {parent}) "
            f"ORDER BY {keys}"
        )

    def parameters(self) -> dict[str, Any]:
        params = {**self.window.split_parameters(self.tenant_id, self.grouping, self.settled_until),
                  **_only_parameters(self.only)}
        if _is_error_grouping(self.grouping):
            recent = self.window.end - timedelta(minutes=min(ERROR_RANK_MINUTES, self.window.minutes))
            params.update(recent=recent.replace(tzinfo=None), top=TOP_ERROR_TYPES)
        return params

    def run(self) -> list[tuple[int, dict[str, str], float]]:
        rows = get_client().query(self.sql(), parameters=self.parameters()).result_rows
        names = labels_of(self.grouping)
        return [(int(r[0]), dict(zip(names, r[1:-1], strict=True)), float(r[-1])) for r in rows]


@dataclass(frozen=True, slots=True)
class FamilyQuery:
    """One metric family for every series of the tenant: rows (matrix cell, metrics…).

    ClickHouse maps each series hash to its matrix row (``transform`` over the bound hashes) and returns the flat
    cell index ``row × minutes + minute``, so the pivot is one scatter per column; a series not in the index lands
    past the end and is dropped.

    ``more``: further families of the grouping read in the same pass (the traffic and latency columns of a
    week of finalised minutes in one ``FINAL`` scan instead of two)."""

    tenant_id: str
    grouping: Grouping
    family: Family
    window: Window
    only: Only = ()
    settled_until: datetime | None = None
    more: tuple[Family, ...] = ()

    def _columns(self) -> dict[str, str]:
        return {name: expr for family in (self.family, *self.more) for name, expr in _FAMILY_COLUMNS[family].items()}

    def sql(self) -> str:
        for family in (self.family, *self.more):
            if (family == Family.ERROR_TYPES) != _is_error_grouping(self.grouping):
                raise ValueError(f"family {family} does not apply to grouping {self.grouping}")

        def cell(series: str) -> str:
            return (f"transform({series}, {{hashes:Array(UInt64)}}, {{rows:Array(UInt64)}}, {{unknown:UInt64}}) "
                    "* {width:UInt64} + intDiv(toUInt32(Minute) - toUInt32({start:DateTime}), 60)")

        stored = ", ".join(self._columns())
        columns = ", ".join(f"{expr} AS {name}" for name, expr in self._columns().items())
        return (
            f"SELECT {cell('Series')} AS cell, {stored} FROM {SERIES_1M} FINAL "
            f"WHERE {_finalised_where(self.grouping, self.only)} "
            f"UNION ALL SELECT {cell(_key_expr(self.grouping))} AS cell, {columns} FROM {_source(self.grouping)} "
            f"WHERE {_where(self.grouping, self.only, 'settled')} GROUP BY cell"
        )

    def run(self, series_index: dict[int, int], out: dict[str, FloatArray] | None = None) -> dict[str, FloatArray]:
        """Matrices (len(series_index) × window.minutes); NaN where a series has no row that minute.

        ``out``: C-contiguous arrays of that shape (e.g. row ranges of a batch) to fill instead of new ones."""
        names = list(self._columns())
        shape = (len(series_index), self.window.minutes)
        if out is None:
            out = {name: np.full(shape, np.nan) for name in names}
        else:
            out = {name: out[name] for name in names}
            for column in out.values():
                if column.shape != shape or not column.flags.c_contiguous:
                    raise ValueError(f"out arrays must be C-contiguous {shape}")
                column.fill(np.nan)
        if not series_index or not shape[1]:
            return out
        parameters = {**self.window.split_parameters(self.tenant_id, self.grouping, self.settled_until),
                      **_only_parameters(self.only), "hashes": list(series_index), "rows": list(series_index.values()),
                      "unknown": len(series_index), "width": shape[1]}
        flat = {name: out[name].reshape(-1) for name in names}
        for block in numpy_column_blocks(self.sql(), parameters):  # scattered block by block, in place
            cells = block[0]
            inside = cells < flat[names[0]].size
            everything = bool(inside.all())
            if not everything:
                cells = cells[inside]
            for name, values in zip(names, block[1:], strict=True):
                flat[name][cells] = values if everything else values[inside]
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


def load_series(
    tenant_id: str,
    grouping: Grouping,
    window: Window,
    families: set[Family],
    cache: SettledCache | None = None,
    only: Only = (),
    settled_until: datetime | None = None,
) -> SeriesMatrix:
    """Load the requested families for every series of the tenant seen in the window (``only``: just the series
    with those labels, e.g. one route in one environment for a preview; never cached).

    ``settled_until``: every minute of the window before it is finalised in ``series_1m`` (the caller ran
    :func:`anomaly.finalised.finalise_settled`), so those are read as floats; None re-aggregates the whole window.
    With a ``cache``, the settled part of the window (older than its settle horizon) comes from process memory
    and only the recent minutes are queried; the result is the same matrix the full query returns, with
    read-only arrays (they share memory with the cache).
    """
    if not tenant_id:
        raise ValueError("a tenant id is required for every rollup query")
    if only:
        return _load_full(tenant_id, grouping, window, families, only, settled_until)[1]
    if cache is not None:
        warm = cache.load(tenant_id, grouping, window, families, settled_until)
        if warm is not None:
            return warm
    presence = {presence_family(grouping)} if cache else set()
    hashes, matrix = _load_full(tenant_id, grouping, window, families | presence, settled_until=settled_until)
    if cache is not None:
        cache.store(tenant_id, grouping, window, hashes, matrix, settled_until=settled_until)
    return _only(matrix, families)


def _load_full(
    tenant_id: str, grouping: Grouping, window: Window, families: set[Family], only: Only = (),
    settled_until: datetime | None = None, labels: list[tuple[int, dict[str, str], float]] | None = None,
    out: dict[str, FloatArray] | None = None,
) -> tuple[npt.NDArray[np.uint64], SeriesMatrix]:
    if labels is None:
        labels = SeriesLabelsQuery(tenant_id, grouping, window, only, settled_until).run()
    matrix = SeriesMatrix(grouping, window, [lab for _, lab, _ in labels], np.array([c for *_, c in labels]))
    index = {h: i for i, (h, _, _) in enumerate(labels)}
    if families:
        first, *more = sorted(families)
        matrix.columns.update(
            FamilyQuery(tenant_id, grouping, first, window, only, settled_until, tuple(more)).run(index, out))
    return np.array([h for h, _, _ in labels], dtype=np.uint64), matrix


def load_stacked(
    tenant_id: str,
    groupings: tuple[Grouping, ...],
    window: Window,
    families: set[Family],
    cache: SettledCache | None = None,
    settled_until: datetime | None = None,
) -> tuple[list[SeriesMatrix], dict[str, FloatArray]]:
    """:func:`load_series` for several groupings at once, their rows stored one grouping after the other in one
    read-only array per column: the batch every detector runs over, without stacking copies.

    A week of 1,000 series is ~80 MB per column; allocating (page-faulting) it once instead of per grouping and
    again for the stack was a quarter of a cold sweep. Each matrix's columns are row ranges of the arrays.
    """
    if not tenant_id:
        raise ValueError("a tenant id is required for every rollup query")
    warm: dict[int, SeriesMatrix] = {}
    labels: dict[int, list[tuple[int, dict[str, str], float]]] = {}
    for i, grouping in enumerate(groupings):
        found = cache.load(tenant_id, grouping, window, families, settled_until) if cache is not None else None
        if found is not None:
            warm[i] = found
        else:
            # Totals are summed from the calls matrix below when it is loaded (the same integer sums).
            totals = Family.TRAFFIC not in families or _is_error_grouping(grouping)
            labels[i] = SeriesLabelsQuery(tenant_id, grouping, window, (), settled_until, totals).run()
    loaded = {i: families | ({presence_family(g)} if cache is not None else set())
              for i, g in enumerate(groupings) if i in labels}
    names = {name for fams in [families, *loaded.values()] for family in fams for name in _FAMILY_COLUMNS[family]}
    sizes = [len(warm[i]) if i in warm else len(labels[i]) for i in range(len(groupings))]
    arrays = {name: np.empty((sum(sizes), window.minutes)) for name in sorted(names)}
    matrices: list[SeriesMatrix] = []
    row = 0
    for i, grouping in enumerate(groupings):
        views = {name: array[row:row + sizes[i]] for name, array in arrays.items()}
        row += sizes[i]
        if i in warm:
            fill_rows(views, warm[i])
            matrices.append(warm[i])
            continue
        wanted = {name for family in loaded[i] for name in _FAMILY_COLUMNS[family]}
        for name in views.keys() - wanted:
            views[name].fill(np.nan)
        hashes, matrix = _load_full(tenant_id, grouping, window, loaded[i], (), settled_until, labels[i], views)
        if Family.TRAFFIC in families and not _is_error_grouping(grouping):
            matrix.total_calls = np.nansum(matrix.columns["calls"], axis=1)
        if cache is not None:
            cache.store(tenant_id, grouping, window, hashes, matrix, settled_until=settled_until)
        matrices.append(_only(matrix, families))
    requested = {name for family in families for name in _FAMILY_COLUMNS[family]}
    return matrices, {name: _read_only(array) for name, array in arrays.items() if name in requested}


def fill_rows(views: dict[str, FloatArray], matrix: SeriesMatrix) -> None:
    """Copy ``matrix``'s columns into ``views`` (its row range of a batch); NaN for a column it does not have."""
    for name, view in views.items():
        part = matrix.columns.get(name)
        view[...] = np.nan if part is None else part


def _read_only(array: FloatArray) -> FloatArray:
    array.flags.writeable = False
    return array


def _only(matrix: SeriesMatrix, families: set[Family]) -> SeriesMatrix:
    wanted = {name for family in families for name in _FAMILY_COLUMNS[family]}
    return SeriesMatrix(matrix.grouping, matrix.window, matrix.keys, matrix.total_calls,
                        {name: col for name, col in matrix.columns.items() if name in wanted})


@dataclass(slots=True)
class _Settled:
    """Matrices of one tenant × grouping for the settled minutes ``[start, end)``, rows in label order."""

    start: datetime
    end: datetime
    hashes: npt.NDArray[np.uint64]
    keys: list[dict[str, str]]
    columns: dict[str, FloatArray]  # always includes the presence column (NaN where a series had no row)
    filled_at: float  # wall-clock time (epoch s) of the full query this entry descends from

    @property
    def nbytes(self) -> int:
        return sum(col.nbytes for col in self.columns.values())


class SettledCache:
    """Process-memory cache of the settled part of each project's rollup matrices.

    Rollup rows older than ``settle`` no longer change (late spans aside), so a per-minute sweep only needs to
    query the newest minutes and append them to what it read before. An entry is dropped (and the next load does
    the full query) when a series appears that the entry does not know, when the sweep finalised late spans into
    its minutes (:meth:`forget`), after ``ttl`` since its full query, when the requested window starts before it,
    or when the byte budget evicts it (least recently used first). A full query is cheap since settled minutes are
    read finalised from ``series_1m`` (shared by every worker and host), so a worker that just started needs no
    other tier. Correctness never depends on the cache.
    """

    def __init__(self, settle: timedelta = SETTLE, ttl: timedelta = timedelta(hours=6),
                 max_bytes: int = 1536 * 2**20) -> None:
        self.settle = settle
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, Grouping], _Settled] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget every entry (what a freshly started worker has)."""
        with self._lock:
            self._entries.clear()

    def forget(self, tenant_id: str) -> None:
        """Drop every entry of the tenant (its settled minutes changed: late spans were finalised again)."""
        with self._lock:
            for grouping in Grouping:
                self._entries.pop((tenant_id, grouping), None)

    def _get(self, key: tuple[str, Grouping]) -> _Settled | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def _put(self, key: tuple[str, Grouping], entry: _Settled) -> None:
        with self._lock:
            self._entries.pop(key, None)
            if entry.nbytes > self.max_bytes:
                return
            self._entries[key] = entry
            while sum(e.nbytes for e in self._entries.values()) > self.max_bytes:
                self._entries.popitem(last=False)

    def _drop(self, key: tuple[str, Grouping]) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def store(self, tenant_id: str, grouping: Grouping, window: Window, hashes: npt.NDArray[np.uint64],
              matrix: SeriesMatrix, filled_at: float | None = None, settled_until: datetime | None = None) -> None:
        """Keep the settled minutes of a full (or assembled) matrix; it must include the presence family.

        With ``settled_until`` only the finalised minutes are kept: the finaliser then sees any later change to them
        (late spans) and the sweep calls :meth:`forget`. Without, the ``settle`` horizon applies (and the TTL bounds
        how long a late span goes unseen)."""
        settled = settled_end(window, self.settle) if settled_until is None else min(settled_until, window.end)
        keep = int((settled - window.start).total_seconds() // 60)
        if keep <= 0 or presence_column(grouping) not in matrix.columns:
            self._drop((tenant_id, grouping))
            return
        # Views, not copies: the matrices handed out are read-only, so nothing can change what is cached.
        columns = {name: _read_only(col)[:, :keep] for name, col in matrix.columns.items()}
        self._put((tenant_id, grouping), _Settled(window.start, settled, hashes.copy(), list(matrix.keys),
                                                   columns, time.time() if filled_at is None else filled_at))

    def load(self, tenant_id: str, grouping: Grouping, window: Window, families: set[Family],
             settled_until: datetime | None = None) -> SeriesMatrix | None:
        """The window's matrix from the cached settled minutes plus a query of the rest, or None (go cold)."""
        key = (tenant_id, grouping)
        entry = self._get(key)
        if entry is None or not 0 <= time.time() - entry.filled_at <= self.ttl.total_seconds():
            self.misses += 1
            return None
        needed = families | {presence_family(grouping)}
        wanted = {name for family in needed for name in _FAMILY_COLUMNS[family]}
        if (window.start < entry.start or window.end <= entry.end or window.start > entry.end
                or not wanted <= entry.columns.keys()):
            self.misses += 1
            return None
        recent = Window(window.end, int((window.end - entry.end).total_seconds() // 60))
        known = {int(h): i for i, h in enumerate(entry.hashes)}
        if any(h not in known for h, _, _ in SeriesLabelsQuery(tenant_id, grouping, recent, (), settled_until).run()):
            self._drop(key)  # a new series: its history may sit in the settled minutes too
            self.misses += 1
            return None
        fresh: dict[str, FloatArray] = {}
        first, *more = sorted(needed)
        fresh.update(FamilyQuery(tenant_id, grouping, first, recent, (), settled_until, tuple(more)).run(known))
        skip = int((window.start - entry.start).total_seconds() // 60)
        columns = {name: np.hstack([entry.columns[name][:, skip:], fresh[name]]) for name in wanted}
        # The full query lists series with at least one row in the window.
        seen = ~np.isnan(columns[presence_column(grouping)]).all(axis=1)
        rows = np.flatnonzero(seen)
        columns = {name: col[rows] if rows.size < col.shape[0] else col for name, col in columns.items()}
        keys = [entry.keys[i] for i in rows]
        total = np.nansum(columns[presence_column(grouping)], axis=1) if rows.size else np.zeros(0)
        matrix = SeriesMatrix(grouping, window, keys, total, columns)
        self.store(tenant_id, grouping, window, entry.hashes[rows], matrix, filled_at=entry.filled_at,
                   settled_until=settled_until)
        self.hits += 1
        return _only(matrix, families)


settled_cache = SettledCache()
