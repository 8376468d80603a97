"""The raw spans of one trace (``otel_traces``), fetched by project and trace id for the waterfall."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dashboards.queries.scope import run
from ingestion.clickhouse.schema import SPAN_TABLE


@dataclass(frozen=True)
class Span:
    timestamp: datetime
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    duration_ms: float
    status_code: str
    status_message: str
    attributes: dict[str, str]
    resource: dict[str, str]
    scope_name: str


def trace_spans(tenant_id: str, trace_id: str, limit: int = 1000) -> list[Span]:
    """Spans as stored (already redacted at ingestion), oldest first."""
    rows = run(
        f"""SELECT Timestamp, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, Duration / 1e6, StatusCode,
        StatusMessage, SpanAttributes, ResourceAttributes, ScopeName FROM {SPAN_TABLE}
        WHERE ProjectId = {{tenant:String}} AND TraceId = {{trace:String}} ORDER BY Timestamp LIMIT {int(limit)}""",
        {"tenant": tenant_id, "trace": trace_id},
    )
    return [Span(r[0], r[1], r[2], r[3], r[4], r[5], float(r[6]), r[7], r[8], dict(r[9]), dict(r[10]), r[11])
            for r in rows]
