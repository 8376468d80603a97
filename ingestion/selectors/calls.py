"""Stored LLM calls, newest first, with keyset (cursor) pagination over (Timestamp, TraceId, SpanId)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingestion.clickhouse.schema import CALLS_TABLE
from ingestion.selectors import TenantQuery, from_ns, to_ns

MAX_LIMIT = 500


@dataclass(frozen=True)
class CallFilters:
    since: datetime | None = None
    until: datetime | None = None
    service: str = ""
    route: str = ""
    provider: str = ""
    model: str = ""  # request or response model
    trace_id: str = ""
    status: str = ""  # "ok" | "error" | ""


@dataclass(frozen=True)
class CallPosition:
    """The sort key of a row: where the next page starts (exclusive)."""

    timestamp_ns: int
    trace_id: str
    span_id: str


@dataclass(frozen=True)
class Call:
    trace_id: str
    span_id: str
    timestamp: datetime
    timestamp_ns: int
    service: str
    route: str
    provider: str
    request_model: str
    response_model: str
    operation: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    priced: bool
    duration_ms: float
    ttft_ms: float | None
    status: str
    error_type: str

    @property
    def position(self) -> CallPosition:
        return CallPosition(self.timestamp_ns, self.trace_id, self.span_id)


_COLUMNS = (
    "TraceId, SpanId, toUnixTimestamp64Nano(Timestamp), ServiceName, Route, Provider, RequestModel, ResponseModel, "
    "Operation, InputTokens, OutputTokens, TotalCost, Priced, DurationMs, TtftMs, IsError, ErrorType"
)


def _call(r: tuple[Any, ...]) -> Call:
    return Call(
        trace_id=r[0], span_id=r[1], timestamp=from_ns(r[2]), timestamp_ns=int(r[2]), service=r[3], route=r[4],
        provider=r[5], request_model=r[6], response_model=r[7], operation=r[8], input_tokens=int(r[9]),
        output_tokens=int(r[10]), cost_usd=None if r[11] is None else float(r[11]), priced=bool(r[12]),
        duration_ms=float(r[13]), ttft_ms=None if r[14] is None else float(r[14]),
        status="error" if r[15] else "ok", error_type=r[16],
    )


class CallsQuery(TenantQuery):
    """One page of calls; ``FINAL`` so a re-stored (trace, span) appears once."""

    def page(self, filters: CallFilters, *, limit: int, after: CallPosition | None = None) -> tuple[list[Call], bool]:
        """Up to ``limit`` calls after ``after`` and whether more follow (one extra row is read to know)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        clauses = ["ProjectId = {tenant:String}"]
        params: dict[str, Any] = {"limit": limit + 1}
        if filters.since is not None:
            clauses.append("Timestamp >= fromUnixTimestamp64Nano({since:Int64})")
            params["since"] = to_ns(filters.since)
        if filters.until is not None:
            clauses.append("Timestamp < fromUnixTimestamp64Nano({until:Int64})")
            params["until"] = to_ns(filters.until)
        for name, column in (("service", "ServiceName"), ("route", "Route"), ("provider", "Provider"),
                             ("trace_id", "TraceId")):
            value = getattr(filters, name)
            if value:
                clauses.append(f"{column} = {{{name}:String}}")
                params[name] = value
        if filters.model:
            clauses.append("(RequestModel = {model:String} OR ResponseModel = {model:String})")
            params["model"] = filters.model
        if filters.status:
            clauses.append("IsError = {is_error:UInt8}")
            params["is_error"] = 1 if filters.status == "error" else 0
        if after is not None:
            clauses.append(
                "(Timestamp, TraceId, SpanId) < (fromUnixTimestamp64Nano({after_ts:Int64}), {after_trace:String}, "
                "{after_span:String})"
            )
            params.update(after_ts=after.timestamp_ns, after_trace=after.trace_id, after_span=after.span_id)
        sql = (
            f"SELECT {_COLUMNS} FROM {CALLS_TABLE} FINAL WHERE {' AND '.join(clauses)} "
            "ORDER BY Timestamp DESC, TraceId DESC, SpanId DESC LIMIT {limit:UInt32}"
        )
        calls = [_call(r) for r in self.rows(sql, params)]
        return calls[:limit], len(calls) > limit
