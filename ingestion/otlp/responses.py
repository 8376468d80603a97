"""OTLP/HTTP responses in the request's encoding: export responses (with partial success) and google.rpc.Status."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ingestion.otlp.decoding import JSON, PROTOBUF, TRACES

# gRPC codes carried in google.rpc.Status.code, matching the HTTP status.
_GRPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}


@dataclass
class OtlpResponse:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def export_response(signal: str, mtype: str, rejected: int = 0, message: str = "") -> OtlpResponse:
    """200: everything accepted was stored; ``rejected``/``message`` fill ``partial_success``."""
    if mtype == JSON:
        body: dict[str, object] = {}
        if rejected or message:
            count = "rejectedSpans" if signal == TRACES else "rejectedLogRecords"
            body["partialSuccess"] = {count: str(rejected), "errorMessage": message}
        return OtlpResponse(200, json.dumps(body).encode(), JSON)
    response = ExportTraceServiceResponse() if signal == TRACES else ExportLogsServiceResponse()
    if rejected or message:
        if signal == TRACES:
            response.partial_success.rejected_spans = rejected
        else:
            response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = message
    return OtlpResponse(200, response.SerializeToString(), PROTOBUF)


def error_response(status: int, mtype: str, message: str, retry_after: int | None = None) -> OtlpResponse:
    """4xx/5xx with a ``google.rpc.Status`` body; 429/503 carry ``Retry-After`` (seconds)."""
    headers = {"Retry-After": str(max(1, int(retry_after)))} if retry_after is not None else {}
    code = _GRPC_CODE.get(status, 2)
    if mtype == JSON:
        return OtlpResponse(status, json.dumps({"code": code, "message": message}).encode(), JSON, headers)
    return OtlpResponse(status, Status(code=code, message=message).SerializeToString(), PROTOBUF, headers)
