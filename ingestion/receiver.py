"""The OTLP/HTTP receiver: one request in, one ``OtlpResponse`` out; the view only adapts Django to this.

Order of checks: API key (401/403) → content type and encoding (415) → inflate within the size limit (413) →
decode and validate (400, or partial success for refused spans) → project rate limit (429) → batch writer
(503 when saturated or ClickHouse fails) → 200 once the batch insert returned. Nothing is stored unless the
answer is 200.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from controlplane.apikeys import VerifiedKey, bearer_token, verify_key
from controlplane.metrics import OTLP_REQUESTS, SPANS_RECEIVED, SPANS_REJECTED
from controlplane.models import Scope
from ingestion import ratelimit
from ingestion.otlp import decoding
from ingestion.otlp.decoding import JSON, PROTOBUF, UnsupportedContentType
from ingestion.otlp.limits import (
    BodyTooLarge,
    UndecodableBody,
    UnsupportedEncoding,
    configured_int,
    max_body_bytes,
    read_body,
)
from ingestion.otlp.responses import OtlpResponse, error_response, export_response
from ingestion.project_settings import ingest_settings
from ingestion.writer import StoreUnavailable, WriterSaturated, get_writer

log = logging.getLogger(__name__)



def _retry_after_unavailable() -> int:
    return configured_int("KEEL_RETRY_AFTER_SECONDS", 5)


RETRY_AFTER_SATURATED = 1


@dataclass(frozen=True)
class IncomingRequest:
    signal: str  # decoding.TRACES | decoding.LOGS
    content_type: str
    content_encoding: str
    authorization: str
    body_chunks: Iterable[bytes]


def _guess_media_type(content_type: str) -> str:
    """The encoding for an error answer before the content type was validated."""
    return JSON if content_type.split(";", 1)[0].strip().lower() == JSON else PROTOBUF


def request_id(tenant: str, signal: str, payload: bytes) -> str:
    """Identical retried requests (same project, same data) get the same id."""
    digest = hashlib.sha256(tenant.encode())
    digest.update(b"\0" + signal.encode() + b"\0")
    digest.update(payload)
    return digest.hexdigest()


async def authenticate(authorization: str, mtype: str) -> VerifiedKey | OtlpResponse:
    token = bearer_token(authorization or "")
    if token is None:
        return error_response(401, mtype, "Send an API key as 'Authorization: Bearer keel_…'.")
    key = await sync_to_async(verify_key)(token)
    if key is None:
        return error_response(401, mtype, "The API key is unknown or revoked.")
    if not key.allows(Scope.INGEST):
        return error_response(403, mtype, "This API key does not have the 'ingest' scope.")
    return key


async def receive(incoming: IncomingRequest) -> OtlpResponse:
    response = await _receive(incoming)
    OTLP_REQUESTS.labels(incoming.signal, str(response.status)).inc()
    return response


def _reject(signal: str, reason: str, spans: int) -> None:
    if signal == decoding.TRACES and spans:
        SPANS_REJECTED.labels(reason).inc(spans)


async def _receive(incoming: IncomingRequest) -> OtlpResponse:
    mtype = _guess_media_type(incoming.content_type)
    key = await authenticate(incoming.authorization, mtype)
    if isinstance(key, OtlpResponse):
        return key
    try:
        mtype = decoding.media_type(incoming.content_type)
        body = read_body(incoming.body_chunks, incoming.content_encoding or "", max_body_bytes())
        export = decoding.decode(incoming.signal, body, mtype)
    except (UnsupportedContentType, UnsupportedEncoding) as exc:
        return error_response(415, mtype, str(exc))
    except BodyTooLarge as exc:
        return error_response(413, mtype, str(exc))
    except UndecodableBody as exc:
        return error_response(400, mtype, str(exc))
    del body

    if incoming.signal == decoding.TRACES:
        SPANS_RECEIVED.inc(export.records + export.rejected)
    _reject(incoming.signal, "invalid", export.rejected)
    if export.records == 0:
        return export_response(incoming.signal, mtype, export.rejected, export.reject_message)

    project = await sync_to_async(ingest_settings)(key.tenant_id)
    rate = project.rate_limit
    wait = ratelimit.limiter.acquire(key.tenant_id, rate, export.records)
    if wait > 0:
        _reject(incoming.signal, "rate_limit", export.records)
        return error_response(
            429, mtype, f"The project's ingest rate limit of {rate} records/s is exceeded; retry later.",
            retry_after=ratelimit.retry_after_seconds(wait),
        )

    rid = request_id(key.tenant_id, incoming.signal, export.payload)
    try:
        future = get_writer().submit(incoming.signal, key.tenant_id, export, rid, custom_content=project.custom_content)
    except WriterSaturated as exc:
        _reject(incoming.signal, "saturated", export.records)
        return error_response(503, mtype, f"Keel is saturated ({exc}); retry later.", RETRY_AFTER_SATURATED)
    timeout = configured_int("KEEL_INGEST_TIMEOUT_SECONDS", 30)
    try:
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
    except StoreUnavailable as exc:
        _reject(incoming.signal, "unavailable", export.records)
        return error_response(503, mtype, f"Storage is unavailable ({exc}); nothing was stored, retry later.",
                              _retry_after_unavailable())
    except TimeoutError:
        _reject(incoming.signal, "timeout", export.records)
        return error_response(503, mtype, "Storing took too long; retry later (a retry is deduplicated).",
                              _retry_after_unavailable())
    return export_response(incoming.signal, mtype, export.rejected, export.reject_message)
