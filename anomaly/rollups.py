"""Rollup reads for the detectors: one ClickHouse query per metric family, every series of a project at once.

A family query groups ``rollups_1m`` by a numeric series hash and the minute (string keys make ClickHouse's hash
table several times slower at 10M groups), re-aggregates (``sum``, ``quantilesMerge``) and comes back as Arrow
columns, which are scattered into (series × minutes) numpy matrices on a shared grid. Series labels come from one
small query. Every query is bound to the tenant; a query object cannot be built without one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from controlplane.settings.env import var_dir
from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.schema import ROLLUP_1M, quantiles_merge

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


def _where(grouping: Grouping, only: Only = ()) -> str:
    where = "ProjectId = {tenant:String} AND Minute >= {start:DateTime} AND Minute < {end:DateTime}"
    if _is_error_grouping(grouping):
        # '_none' carries the error-free calls (always 0 errors); a type with no errors that minute is no row.
        where += " AND ErrorCount > 0 AND ErrorType != '_none'"
    for i, (label, _value) in enumerate(only):
        column = _COLUMN_OF.get(label)
        if column not in _KEYS[grouping]:
            raise ValueError(f"{label!r} is not a series label of {grouping}")
        where += f" AND {column} = {{only{i}:String}}"
    return where


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


@dataclass(frozen=True, slots=True)
class SeriesLabelsQuery:
    """The label tuple behind every series hash seen in the window, with its calls (error types: its errors)."""

    tenant_id: str
    grouping: Grouping
    window: Window
    only: Only = ()

    def sql(self) -> str:
        keys = ", ".join(_KEYS[self.grouping])
        head = f"SELECT {_key_expr(self.grouping)} AS s, {keys}"
        if not _is_error_grouping(self.grouping):
            return (f"{head}, toFloat64(sum(Calls)) AS calls FROM {_source(self.grouping)} "
                    f"WHERE {_where(self.grouping, self.only)} GROUP BY s, {keys} ORDER BY {keys}")
        parent = ", ".join(_KEYS[ERROR_PARENT[self.grouping]])
        return (
            f"SELECT s, {keys}, calls FROM ({head}, toFloat64(sum(ErrorCount)) AS calls, "
            "sumIf(ErrorCount, Minute >= {recent:DateTime}) AS recent "
            f"FROM {_source(self.grouping)} WHERE {_where(self.grouping, self.only)} GROUP BY s, {keys} "
            f"ORDER BY recent DESC, calls DESC, {keys} LIMIT {{top:UInt32}} BY {parent}) ORDER BY {keys}"
        )

    def parameters(self) -> dict[str, Any]:
        params = {**self.window.parameters(self.tenant_id), **_only_parameters(self.only)}
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
    """One metric family for every series of the tenant: rows (series hash, minute index, metrics…)."""

    tenant_id: str
    grouping: Grouping
    family: Family
    window: Window
    only: Only = ()

    def sql(self) -> str:
        if (self.family == Family.ERROR_TYPES) != _is_error_grouping(self.grouping):
            raise ValueError(f"family {self.family} does not apply to grouping {self.grouping}")
        columns = ", ".join(f"{expr} AS {name}" for name, expr in _FAMILY_COLUMNS[self.family].items())
        return (
            f"SELECT {_key_expr(self.grouping)} AS s, "
            "toUInt32(intDiv(toUInt32(Minute) - toUInt32({start:DateTime}), 60)) AS m, "
            f"{columns} FROM {_source(self.grouping)} WHERE {_where(self.grouping, self.only)} GROUP BY s, m"
        )

    def run(self, series_index: dict[int, int]) -> dict[str, FloatArray]:
        """Matrices (len(series_index) × window.minutes); NaN where a series has no row that minute."""
        parameters = {**self.window.parameters(self.tenant_id), **_only_parameters(self.only)}
        table = get_client().query_arrow(self.sql(), parameters=parameters)
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


def load_series(
    tenant_id: str,
    grouping: Grouping,
    window: Window,
    families: set[Family],
    cache: SettledCache | None = None,
    only: Only = (),
) -> SeriesMatrix:
    """Load the requested families for every series of the tenant seen in the window (``only``: just the series
    with those labels, e.g. one route in one environment for a preview; never cached).

    With a ``cache``, the settled part of the window (older than its settle horizon) comes from process memory
    and only the recent minutes are queried; the result is the same matrix the full query returns, with
    read-only arrays (they share memory with the cache).
    """
    if not tenant_id:
        raise ValueError("a tenant id is required for every rollup query")
    if only:
        return _load_full(tenant_id, grouping, window, families, only)[1]
    if cache is not None:
        warm = cache.load(tenant_id, grouping, window, families)
        if warm is not None:
            return warm
    presence = {presence_family(grouping)} if cache else set()
    hashes, matrix = _load_full(tenant_id, grouping, window, families | presence)
    if cache is not None:
        cache.store(tenant_id, grouping, window, hashes, matrix)
    return _only(matrix, families)


def _load_full(
    tenant_id: str, grouping: Grouping, window: Window, families: set[Family], only: Only = ()
) -> tuple[npt.NDArray[np.uint64], SeriesMatrix]:
    labels = SeriesLabelsQuery(tenant_id, grouping, window, only).run()
    matrix = SeriesMatrix(grouping, window, [lab for _, lab, _ in labels], np.array([c for *_, c in labels]))
    index = {h: i for i, (h, _, _) in enumerate(labels)}
    for family in sorted(families):
        matrix.columns.update(FamilyQuery(tenant_id, grouping, family, window, only).run(index))
    return np.array([h for h, _, _ in labels], dtype=np.uint64), matrix


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

    def write(self, path: Path) -> None:
        """One uncompressed ``.npz`` replaced atomically, so a reader in another process sees old or new, never
        half; the labels and bounds travel as JSON beside the arrays."""
        meta = {"start": self.start.isoformat(), "end": self.end.isoformat(), "keys": self.keys,
                "filled_at": self.filled_at, "columns": sorted(self.columns)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        arrays: dict[str, Any] = {f"c_{name}": np.ascontiguousarray(col) for name, col in self.columns.items()}
        with open(tmp, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), hashes=self.hashes, **arrays)
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> _Settled | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                columns = {name: _read_only(data[f"c_{name}"]) for name in meta["columns"]}
                hashes = data["hashes"]
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None  # missing, or written by an older version: the caller goes cold
        return cls(datetime.fromisoformat(meta["start"]), datetime.fromisoformat(meta["end"]), hashes,
                   meta["keys"], columns, float(meta["filled_at"]))


class SettledCache:
    """Cache of the settled part of each project's rollup matrices: in process memory, and (with ``directory``) on
    local disk shared by the worker processes of the host.

    Rollup rows older than ``settle`` (late spans aside) no longer change, so a per-minute sweep only needs to
    query the newest minutes and append them to what it read before. An entry is dropped (and the next load does
    the full query) when a series appears that the entry does not know, after ``ttl`` since its full query (which
    also picks up any late spans), when the requested window starts before it, or when the byte budget evicts it
    (least recently used first). Finalising a week of per-minute t-digests is the expensive part of a cold load
    (tens of seconds for 1,000 series); the disk tier lets a worker that just started, or another worker, reuse a
    full query made within ``ttl`` instead of repeating it. Correctness never depends on either tier.
    """

    def __init__(self, settle: timedelta = timedelta(hours=2), ttl: timedelta = timedelta(hours=1),
                 max_bytes: int = 1536 * 2**20, directory: Path | None = None) -> None:
        self.settle = settle
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.directory = directory
        self._entries: OrderedDict[tuple[str, Grouping], _Settled] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0

    def clear(self, *, memory_only: bool = False) -> None:
        """Forget every entry; ``memory_only`` keeps the disk tier (what a freshly started worker would find)."""
        with self._lock:
            self._entries.clear()
        if not memory_only and self.directory is not None and self.directory.exists():
            for path in self.directory.glob("*.npz"):
                path.unlink(missing_ok=True)

    def _path(self, key: tuple[str, Grouping]) -> Path | None:
        if self.directory is None:
            return None
        tenant = hashlib.sha256(key[0].encode()).hexdigest()[:32]
        return self.directory / f"{tenant}-{key[1].value}.npz"

    def _get(self, key: tuple[str, Grouping]) -> _Settled | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        path = self._path(key)
        entry = _Settled.read(path) if path is not None and path.exists() else None
        if entry is not None:
            self._put(key, entry, persist=False)
            self.disk_hits += 1
        return entry

    def _put(self, key: tuple[str, Grouping], entry: _Settled, persist: bool = False) -> None:
        path = self._path(key) if persist else None
        if path is not None:
            try:
                entry.write(path)
            except OSError:
                logger.exception("could not write the settled-rollup cache to %s", path)
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
        path = self._path(key)
        if path is not None:
            path.unlink(missing_ok=True)

    def store(self, tenant_id: str, grouping: Grouping, window: Window, hashes: npt.NDArray[np.uint64],
              matrix: SeriesMatrix, filled_at: float | None = None) -> None:
        """Keep the settled minutes of a full (or assembled) matrix; it must include the presence family."""
        # Settled relative to the window's end and to the clock (a window ending in the future has nothing settled).
        settled_end = min(window.end, Window.ending_now(0).end) - self.settle
        keep = int((settled_end - window.start).total_seconds() // 60)
        if keep <= 0 or presence_column(grouping) not in matrix.columns:
            self._drop((tenant_id, grouping))
            return
        # Views, not copies: the matrices handed out are read-only, so nothing can change what is cached.
        columns = {name: _read_only(col)[:, :keep] for name, col in matrix.columns.items()}
        # Only a fresh full query goes to disk; the per-minute extensions stay in memory (a reader of the file
        # queries the minutes after its end, which is cheap).
        self._put((tenant_id, grouping), _Settled(window.start, settled_end, hashes.copy(), list(matrix.keys),
                                                   columns, time.time() if filled_at is None else filled_at),
                  persist=filled_at is None)

    def load(self, tenant_id: str, grouping: Grouping, window: Window, families: set[Family]) -> SeriesMatrix | None:
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
        if any(h not in known for h, _, _ in SeriesLabelsQuery(tenant_id, grouping, recent).run()):
            self._drop(key)  # a new series: its history may sit in the settled minutes too
            self.misses += 1
            return None
        fresh: dict[str, FloatArray] = {}
        for family in sorted(needed):
            fresh.update(FamilyQuery(tenant_id, grouping, family, recent).run(known))
        skip = int((window.start - entry.start).total_seconds() // 60)
        columns = {name: np.hstack([entry.columns[name][:, skip:], fresh[name]]) for name in wanted}
        # The full query lists series with at least one row in the window.
        seen = ~np.isnan(columns[presence_column(grouping)]).all(axis=1)
        rows = np.flatnonzero(seen)
        columns = {name: col[rows] if rows.size < col.shape[0] else col for name, col in columns.items()}
        keys = [entry.keys[i] for i in rows]
        total = np.nansum(columns[presence_column(grouping)], axis=1) if rows.size else np.zeros(0)
        matrix = SeriesMatrix(grouping, window, keys, total, columns)
        self.store(tenant_id, grouping, window, entry.hashes[rows], matrix, filled_at=entry.filled_at)
        self.hits += 1
        return _only(matrix, families)


settled_cache = SettledCache(directory=var_dir() / "detector-cache")
