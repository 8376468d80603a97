"""Decode OTLP export requests (protobuf or OTLP/JSON), validate ids, and drop what cannot be stored.

Parsing uses the upb-backed protobuf runtime (C speed). The only per-span Python work is the id check the spec
requires for partial success and collecting the span keys used for idempotency; everything else (flattening,
stringification, normalisation, redaction, cost) happens inside ClickHouse.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingestion.otlp.limits import UndecodableBody

TRACES = "traces"
LOGS = "logs"

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


class UnsupportedContentType(Exception):
    """Neither OTLP protobuf nor OTLP/JSON: 415."""


@dataclass
class DecodedExport:
    """A validated export request: what to store, and what was refused (for ``partial_success``)."""

    signal: str
    payload: bytes
    records: int
    rejected: int = 0
    reject_reasons: list[str] = field(default_factory=list)
    span_keys: list[str] = field(default_factory=list)
    span_minutes: set[int] = field(default_factory=set)

    @property
    def reject_message(self) -> str:
        return "; ".join(self.reject_reasons)


def media_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` → ``application/json``; 415 for anything but OTLP's two types."""
    mt = content_type.split(";", 1)[0].strip().lower()
    if mt in (PROTOBUF, "application/protobuf", "application/vnd.google.protobuf"):
        return PROTOBUF
    if mt == JSON:
        return JSON
    raise UnsupportedContentType(
        f"Content-Type {content_type or '(none)'!r} is not supported; send application/x-protobuf or application/json."
    )


def decode(signal: str, body: bytes, mtype: str) -> DecodedExport:
    message: Message = ExportTraceServiceRequest() if signal == TRACES else ExportLogsServiceRequest()
    if mtype == PROTOBUF:
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise UndecodableBody(f"The body is not a valid OTLP protobuf {type(message).__name__}: {exc}.") from None
        serialized: bytes | None = body
        if len(UnknownFieldSet(message)):
            # Top-level fields OTLP does not define could collide with the wrapper's keel_* fields: drop them.
            message.DiscardUnknownFields()
            serialized = None
    else:
        _parse_json(signal, body, message)
        serialized = None
    return _validate_traces(message, serialized) if signal == TRACES else _validate_logs(message, serialized)


# --- OTLP/JSON ------------------------------------------------------------------------------------------------


def _hex_to_b64(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise UndecodableBody(f"{what} must be a hex string, got {type(value).__name__}.")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b"\xff"  # not hex: becomes an id of the wrong length, refused as a partial success
    return base64.b64encode(raw).decode()


def _fix_ids(obj: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    for name in names:
        for key in (name, _snake(name)):
            if key in obj and obj[key] is not None:
                obj[key] = _hex_to_b64(obj[key], f"{where}.{name}")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _items(obj: dict[str, Any], name: str) -> list[Any]:
    value = obj.get(name, obj.get(_snake(name)))
    if value is None:
        return []
    if not isinstance(value, list):
        raise UndecodableBody(f"{name} must be a JSON array.")
    return value


def _parse_json(signal: str, body: bytes, message: Message) -> None:
    """OTLP/JSON differs from proto3 JSON in its ids (hex, not base64): convert them, then parse generically."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UndecodableBody(f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise UndecodableBody("The JSON is nested too deeply.") from None
    if not isinstance(data, dict):
        raise UndecodableBody("The body must be a JSON object (an OTLP export request).")
    try:
        if signal == TRACES:
            for rs in _items(data, "resourceSpans"):
                for ss in _items(rs, "scopeSpans"):
                    for span in _items(ss, "spans"):
                        _fix_ids(span, ("traceId", "spanId", "parentSpanId"), "span")
                        for link in _items(span, "links"):
                            _fix_ids(link, ("traceId", "spanId"), "link")
        else:
            for rl in _items(data, "resourceLogs"):
                for sl in _items(rl, "scopeLogs"):
                    for record in _items(sl, "logRecords"):
                        _fix_ids(record, ("traceId", "spanId"), "logRecord")
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except (AttributeError, TypeError) as exc:
        raise UndecodableBody(f"The JSON does not have the shape of an OTLP export request: {exc}.") from None
    except (json_format.ParseError, binascii.Error, ValueError) as exc:
        raise UndecodableBody(f"The JSON is not a valid OTLP export request: {exc}.") from None
    except RecursionError:
        raise UndecodableBody("The JSON is nested too deeply.") from None


# --- validation -----------------------------------------------------------------------------------------------


_NANOS_PER_MINUTE = 60_000_000_000


def span_minute(start_time_unix_nano: int) -> int:
    """The span's start in whole minutes since the epoch, exactly as ClickHouse computes ``keel_span_keys.Minute``
    from the stored ``Timestamp`` (the unsigned nanoseconds reinterpreted as Int64, divided toward zero)."""
    ns = start_time_unix_nano - (1 << 64) if start_time_unix_nano >= (1 << 63) else start_time_unix_nano
    minutes = abs(ns) // _NANOS_PER_MINUTE
    return minutes if ns >= 0 else -minutes


def _validate_traces(message: Any, serialized: bytes | None) -> DecodedExport:
    keys: list[str] = []
    append = keys.append
    minutes: set[int] = set()
    add_minute = minutes.add
    bad_trace = bad_span = bad_parent = 0
    total = 0
    removals: list[tuple[Any, list[int]]] = []
    for rs in message.resource_spans:
        for ss in rs.scope_spans:
            bad_here: list[int] = []
            for i, span in enumerate(ss.spans):
                tid = span.trace_id
                sid = span.span_id
                if len(tid) != 16 or tid == _ZERO_TRACE:
                    bad_trace += 1
                    bad_here.append(i)
                elif len(sid) != 8 or sid == _ZERO_SPAN:
                    bad_span += 1
                    bad_here.append(i)
                elif len(span.parent_span_id) not in (0, 8):
                    bad_parent += 1
                    bad_here.append(i)
                else:
                    append(tid.hex() + sid.hex())
                    add_minute(span_minute(span.start_time_unix_nano))
            total += len(ss.spans)
            if bad_here:
                removals.append((ss.spans, bad_here))
    reasons = []
    if bad_trace:
        reasons.append(f"{bad_trace} span(s) refused: trace_id must be 16 bytes (32 hex digits) and not all zero")
    if bad_span:
        reasons.append(f"{bad_span} span(s) refused: span_id must be 8 bytes (16 hex digits) and not all zero")
    if bad_parent:
        reasons.append(f"{bad_parent} span(s) refused: parent_span_id must be empty or 8 bytes")
    if removals:
        for spans, indices in removals:
            for i in reversed(indices):
                del spans[i]
        serialized = None
    rejected = bad_trace + bad_span + bad_parent
    return DecodedExport(
        TRACES,
        serialized if serialized is not None else message.SerializeToString(),
        records=total - rejected,
        rejected=rejected,
        reject_reasons=reasons,
        span_keys=keys,
        span_minutes=minutes,
    )


def _validate_logs(message: Any, serialized: bytes | None) -> DecodedExport:
    bad = total = 0
    removals: list[tuple[Any, list[int]]] = []
    for rl in message.resource_logs:
        for sl in rl.scope_logs:
            bad_here = [
                i
                for i, rec in enumerate(sl.log_records)
                if len(rec.trace_id) not in (0, 16) or len(rec.span_id) not in (0, 8)
            ]
            total += len(sl.log_records)
            if bad_here:
                bad += len(bad_here)
                removals.append((sl.log_records, bad_here))
    for records, indices in removals:
        for i in reversed(indices):
            del records[i]
    reasons = (
        [f"{bad} log record(s) refused: trace_id must be empty or 16 bytes and span_id empty or 8 bytes"] if bad else []
    )
    return DecodedExport(
        LOGS,
        serialized if serialized is not None and not removals else message.SerializeToString(),
        records=total - bad,
        rejected=bad,
        reject_reasons=reasons,
    )


def without_spans(export: DecodedExport, drop: set[str]) -> bytes:
    """Re-serialize a traces export without spans whose key is in ``drop`` and without repeats of one span.

    Parses the payload again: keeping every queued request's decoded message alive for this rare case would
    multiply the writer's memory.
    """
    message = ExportTraceServiceRequest.FromString(export.payload)
    seen: set[str] = set()
    for rs in message.resource_spans:
        for ss in rs.scope_spans:
            doomed = []
            for i, s in enumerate(ss.spans):
                key = s.trace_id.hex() + s.span_id.hex()
                if key in drop or key in seen:
                    doomed.append(i)
                seen.add(key)
            for i in reversed(doomed):
                del ss.spans[i]
    return message.SerializeToString()
