"""The batch writer: many concurrent OTLP requests, one ClickHouse insert, acknowledged only once it returned.

Requests hand their validated, serialized export to :meth:`BatchWriter.submit` and wait on the returned future.
One writer thread takes everything queued (batches form naturally while the previous insert runs), drops spans
that are already stored, and raw-inserts the length-delimited protobuf wrappers into the landing table
(:mod:`ingestion.clickhouse.landing`). Each future resolves when that insert has returned — a 200 means stored.

Idempotency:

* identical requests in flight at the same time share one future (request id = sha256(project + payload));
* spans whose (trace id, span id) this project already stored (``keel_span_keys``, fed by a view on
  ``otel_traces``, looked up by the minutes of span start the batch covers) or that appear earlier in the same
  batch are removed before the insert, so a retried request,
  or the same span inside another request, never reaches ``otel_traces`` / ``llm_calls`` / the rollups twice;
* log requests are deduplicated by request id the same way.

The check-then-insert is race-free inside one process (one writer thread). Several Keel processes writing the
same project can still race on a retry; ``llm_calls`` is a ReplacingMergeTree, so only rollups could count such a
span twice.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.internal.encoder import _VarintBytes

from controlplane.metrics import INSERT_BATCH_ROWS, INSERT_FAILURES, INSERT_SECONDS, SPANS_STORED
from ingestion.clickhouse import landing
from ingestion.clickhouse.client import get_client
from ingestion.otlp.decoding import TRACES, DecodedExport, without_spans
from ingestion.otlp.limits import configured_int

log = logging.getLogger(__name__)


class WriterSaturated(Exception):
    """Too much is queued already: answer 503 + Retry-After instead of growing memory."""


class StoreUnavailable(Exception):
    """The insert failed for a reason worth retrying (ClickHouse down, overloaded, …): 503 + Retry-After."""


def _field(number: int, value: bytes) -> bytes:
    return _VarintBytes((number << 3) | 2) + _VarintBytes(len(value)) + value


@dataclass
class _Item:
    signal: str
    tenant: str
    export: DecodedExport
    request_id: str
    custom_content: bool = False  # extra PII patterns or capture "none": the custom landing table
    future: Future[int] = field(default_factory=Future)

    @property
    def records(self) -> int:
        return self.export.records


class StoredKeys:
    """Which of a batch's keys each project already stored (bound parameters, scoped to the batch's projects).

    Span keys are looked up only in the minutes (of span start) the batch covers, so the cost follows the ingest
    rate, not the two days of keys kept. Keys travel as one comma-joined string: formatting thousands of array
    elements as parameters costs more than the lookup.
    """

    SPANS_SQL = (
        f"SELECT ProjectId, Key FROM {landing.SPAN_KEYS_TABLE} "
        "WHERE ProjectId IN {projects:Array(String)} AND Minute IN {minutes:Array(Int64)} "
        "AND Key IN (SELECT arrayJoin(splitByChar(',', {keys:String})))"
    )
    LOGS_SQL = (
        f"SELECT ProjectId, Key FROM {landing.KEYS_TABLE} "
        "WHERE ProjectId IN {projects:Array(String)} AND Kind = 'logs' "
        "AND Key IN (SELECT arrayJoin(splitByChar(',', {keys:String})))"
    )

    @classmethod
    def spans(
        cls, client: Any, keys_by_tenant: dict[str, set[str]], minutes: set[int]
    ) -> set[tuple[str, str]]:
        return cls._find(client, cls.SPANS_SQL, keys_by_tenant, {"minutes": sorted(minutes)})

    @classmethod
    def log_requests(cls, client: Any, keys_by_tenant: dict[str, set[str]]) -> set[tuple[str, str]]:
        return cls._find(client, cls.LOGS_SQL, keys_by_tenant, {})

    @staticmethod
    def _find(
        client: Any, sql: str, keys_by_tenant: dict[str, set[str]], extra: dict[str, Any]
    ) -> set[tuple[str, str]]:
        tenants = [t for t, keys in keys_by_tenant.items() if keys]
        if not tenants:
            return set()
        keys = _keys_parameter(",".join(sorted(set().union(*(keys_by_tenant[t] for t in tenants)))))
        rows = client.query(sql, parameters={"projects": tenants, "keys": keys, **extra}).result_rows
        return {(str(p), str(k)) for p, k in rows}


class _BoundKeys:
    """The comma-joined keys as a bound ``String`` parameter, without the driver's escaping pass.

    The driver escapes a ``str`` parameter character by character in Python: for the ~400 KB of keys of a large
    batch that cost more CPU than the lookup itself (~50 ms of the writer thread per 8,000 spans). Span keys are
    lowercase hex and request ids sha256 hex, so nothing in them needs escaping; :func:`_keys_parameter` checks
    that, and the value is still sent as a bound parameter (the driver formats a type it does not know with
    ``str()``).
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


_NOTHING_TO_ESCAPE = re.compile(r"[0-9a-f,]*")


def _keys_parameter(keys: str) -> object:
    """``keys`` bound without the escaping pass when it needs none (always, for Keel's keys), else as is."""
    return _BoundKeys(keys) if _NOTHING_TO_ESCAPE.fullmatch(keys) else keys


class BatchWriter:
    def __init__(
        self,
        client_factory: Callable[[], Any] = get_client,
        max_queued_records: int | None = None,
        max_batch_records: int | None = None,
        linger_ms: int | None = None,
        max_linger_ms: int | None = None,
    ) -> None:
        self.client_factory = client_factory
        self.max_queued_records = max_queued_records or configured_int("KEEL_WRITER_MAX_QUEUED_RECORDS", 65_536)
        self.max_batch_records = max_batch_records or configured_int("KEEL_WRITER_MAX_BATCH_RECORDS", 32_768)
        # Every insert pays a fixed cost (the views' SELECTs are analysed per insert, one part per table): after
        # an insert, exporters answered together send their next requests together, so wait while they keep
        # arriving (at most `linger_ms` between two, `max_linger_ms` in all) instead of inserting the first alone.
        self.linger_s = (configured_int("KEEL_WRITER_LINGER_MS", 50) if linger_ms is None else linger_ms) / 1000
        self.max_linger_s = (
            configured_int("KEEL_WRITER_MAX_LINGER_MS", 300) if max_linger_ms is None else max_linger_ms
        ) / 1000
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_records = 0
        self._inflight: dict[str, Future[int]] = {}
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self.batches = 0

    # --- producer side --------------------------------------------------------------------------------------

    def submit(
        self, signal: str, tenant: str, export: DecodedExport, request_id: str, *, custom_content: bool = False
    ) -> Future[int]:
        """Queue an export; the future resolves to the number of records stored (or raises StoreUnavailable)."""
        with self._cv:
            same = self._inflight.get(request_id)
            if same is not None:
                return same
            if self._queued_records and self._queued_records + export.records > self.max_queued_records:
                raise WriterSaturated(f"{self._queued_records} records are waiting to be written")
            item = _Item(signal, tenant, export, request_id, custom_content)
            self._inflight[request_id] = item.future
            self._queue.append(item)
            self._queued_records += export.records
            self._ensure_thread()
            self._cv.notify()
        return item.future

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything accepted has been written (graceful shutdown); False if time ran out."""
        with self._cv:
            return self._cv.wait_for(lambda: self._queued_records == 0, timeout)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="keel-batch-writer", daemon=True)
            self._thread.start()

    # --- writer thread --------------------------------------------------------------------------------------

    def _take(self) -> list[_Item]:
        with self._cv:
            while not self._queue:
                self._cv.wait()
            if self.linger_s > 0:
                deadline = time.monotonic() + self.max_linger_s
                while self._queued_records < self.max_batch_records:
                    seen = len(self._queue)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._cv.wait_for(
                        lambda seen=seen: len(self._queue) != seen, min(self.linger_s, remaining)  # type: ignore[misc]
                    ):
                        break
            batch: list[_Item] = []
            records = 0
            while self._queue and (not batch or records + self._queue[0].records <= self.max_batch_records):
                item = self._queue.popleft()
                batch.append(item)
                records += item.records
            return batch

    def _done(self, batch: list[_Item]) -> None:
        with self._cv:
            for item in batch:
                self._queued_records -= item.records
                if self._inflight.get(item.request_id) is item.future:
                    del self._inflight[item.request_id]
            self._cv.notify_all()  # wakes drain()

    def _run(self) -> None:
        while True:
            batch = self._take()
            try:
                for signal in {item.signal for item in batch}:
                    self._write([i for i in batch if i.signal == signal])
            except Exception as exc:  # never let the thread die; every future gets an answer
                log.exception("batch writer failed")
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(StoreUnavailable(str(exc)))
            finally:
                self._done(batch)
                self.batches += 1

    def _write(self, items: list[_Item]) -> None:
        try:
            self._insert(items)
        except Exception as exc:
            if len(items) == 1:
                log.warning("ClickHouse insert failed: %s", exc)
                items[0].future.set_exception(StoreUnavailable(_short(exc)))
                return
            log.warning("batch insert of %d requests failed (%s); retrying them one by one", len(items), _short(exc))
            for item in items:
                self._write([item])

    def _insert(self, items: list[_Item]) -> None:
        client = self.client_factory()
        if items[0].signal == TRACES:
            messages = self._dedup_spans(client, items)
            columns, message = landing.TRACES_INSERT_COLUMNS, "KeelTraces"
            tables = {landing.TRACES_LANDING: [m for m in messages if not m[1].custom_content],
                      landing.TRACES_CUSTOM_LANDING: [m for m in messages if m[1].custom_content]}
        else:
            messages = self._dedup_log_requests(client, items)
            columns, message = landing.LOGS_INSERT_COLUMNS, "KeelLogs"
            tables = {landing.LOGS_LANDING: messages}
        for table, part in tables.items():
            if part:
                self._insert_wrapped(client, table, columns, message, part)
        stored = {id(item): 0 for item in items}
        for _payload, item in messages:
            stored[id(item)] = item.records
        for item in items:
            if not item.future.done():
                item.future.set_result(stored[id(item)])

    def _insert_wrapped(
        self, client: Any, table: str, columns: list[str], message: str, messages: list[tuple[bytes, _Item]]
    ) -> None:
        """One raw ``Protobuf`` insert of the payloads, each wrapped with its tenant and request id.

        The block is handed over as a stream of pieces (length, payload, wrapper fields), so the payloads — ~1.6 MB
        per 512 spans — are not copied into one wrapped message each and then into one block.
        """

        def block() -> Iterator[bytes]:
            for payload, item in messages:
                trailer = (_field(landing.PROJECT_FIELD, item.tenant.encode())
                           + _field(landing.REQUEST_ID_FIELD, item.request_id.encode()))
                yield _VarintBytes(len(payload) + len(trailer))
                yield payload
                yield trailer

        started = time.perf_counter()
        try:
            # A one-shot generator, not bytes: clickhouse-connect's HTTP client replays a bytes body once when the
            # connection drops before the answer, even if the server had already stored it, and the replay would
            # bypass the duplicate check above (llm_calls and the rollups counted the batch twice). A generator
            # cannot be replayed, so a dropped answer becomes a 503 and the exporter's retry is deduplicated.
            client.raw_insert(
                table, columns, insert_block=block(), fmt="Protobuf", settings=landing.insert_settings(message),
            )
        except Exception:
            INSERT_FAILURES.inc()
            raise
        INSERT_SECONDS.observe(time.perf_counter() - started)
        records = sum(item.records for _payload, item in messages)
        INSERT_BATCH_ROWS.observe(records)
        if messages[0][1].signal == TRACES:
            SPANS_STORED.inc(records)

    def _dedup_spans(self, client: Any, items: list[_Item]) -> list[tuple[bytes, _Item]]:
        keys_by_tenant: dict[str, set[str]] = collections.defaultdict(set)
        minutes: set[int] = set()
        for item in items:
            keys_by_tenant[item.tenant].update(item.export.span_keys)
            minutes |= item.export.span_minutes
        stored = StoredKeys.spans(client, keys_by_tenant, minutes)
        seen: dict[str, set[str]] = collections.defaultdict(set)
        out: list[tuple[bytes, _Item]] = []
        for item in items:
            keys = item.export.span_keys
            if not keys:
                continue
            earlier = seen[item.tenant]
            drop = {k for k in keys if (item.tenant, k) in stored or k in earlier}
            if drop or len(set(keys)) != len(keys):
                remaining = [k for k in dict.fromkeys(keys) if k not in drop]
                if remaining:
                    out.append((without_spans(item.export, drop), item))
                earlier.update(remaining)
            else:
                out.append((item.export.payload, item))
                earlier.update(keys)
        return out

    def _dedup_log_requests(self, client: Any, items: list[_Item]) -> list[tuple[bytes, _Item]]:
        keys_by_tenant: dict[str, set[str]] = collections.defaultdict(set)
        for item in items:
            keys_by_tenant[item.tenant].add(item.request_id)
        stored = StoredKeys.log_requests(client, keys_by_tenant)
        out, seen = [], set()
        for item in items:
            key = (item.tenant, item.request_id)
            if item.records and key not in stored and key not in seen:
                out.append((item.export.payload, item))
            seen.add(key)
        return out


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


_writer: BatchWriter | None = None
_writer_lock = threading.Lock()


def get_writer() -> BatchWriter:
    """The process-wide writer (one per process: its thread is what makes the dedup check race-free)."""
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = BatchWriter()
        return _writer


def set_writer(writer: BatchWriter | None) -> BatchWriter | None:
    """Swap the process-wide writer (tests use a writer over a broken client); returns the previous one."""
    global _writer
    with _writer_lock:
        previous, _writer = _writer, writer
        return previous
