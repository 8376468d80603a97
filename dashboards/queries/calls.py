"""Reads of individual calls (``llm_calls``): call search and the calls of one trace.

These are bounded by project and time window (or trace id); charts never come from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dashboards.queries.scope import Scope, run
from ingestion.clickhouse.schema import CALLS_TABLE


@dataclass(frozen=True)
class CallRow:
    timestamp: datetime
    trace_id: str
    span_id: str
    service: str
    route: str
    provider: str
    model: str
    operation: str
    duration_ms: float
    ttft_ms: float | None
    is_error: bool
    error_type: str
    input_tokens: int
    output_tokens: int
    cost: float | None
    user_id: str
    input_content: str
    output_content: str


_CALL_COLUMNS = ("Timestamp, TraceId, SpanId, ServiceName, Route, Provider, ResponseModel, Operation, DurationMs, "
                 "TtftMs, IsError, ErrorType, InputTokens, OutputTokens, TotalCost, UserId, "
                 "substring(InputContent, 1, 300), substring(OutputContent, 1, 300)")


def _call(r: tuple[Any, ...]) -> CallRow:
    return CallRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], float(r[8]), r[9], bool(r[10]), r[11],
                   int(r[12]), int(r[13]), r[14], r[15], r[16], r[17])


def search_calls(scope: Scope, text: str = "", *, errors_only: bool = False, limit: int = 50) -> list[CallRow]:
    """Newest calls matching the filters; ``text`` matches stored prompt/response content (case-insensitive)."""
    where, params = scope.where("Timestamp")
    if text:
        where += (" AND (positionCaseInsensitiveUTF8(InputContent, {text:String}) > 0"
                  " OR positionCaseInsensitiveUTF8(OutputContent, {text:String}) > 0)")
        params["text"] = text
    if errors_only:
        where += " AND IsError = 1"
    rows = run(
        f"SELECT {_CALL_COLUMNS} FROM {CALLS_TABLE} WHERE {where} ORDER BY Timestamp DESC LIMIT {int(limit)}",
        params,
    )
    return [_call(r) for r in rows]


def calls_in_trace(tenant_id: str, trace_id: str) -> list[CallRow]:
    rows = run(
        f"""SELECT {_CALL_COLUMNS} FROM {CALLS_TABLE} FINAL
        WHERE ProjectId = {{tenant:String}} AND TraceId = {{trace:String}} ORDER BY Timestamp LIMIT 500""",
        {"tenant": tenant_id, "trace": trace_id},
    )
    return [_call(r) for r in rows]
