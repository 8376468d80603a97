"""OTLP/HTTP endpoints: adapt the Django request to :func:`ingestion.receiver.receive` and back. Async, so many
concurrent exports can wait on one shared batch insert without holding a thread each."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from ingestion.otlp.decoding import LOGS, TRACES
from ingestion.receiver import IncomingRequest, receive

_CHUNK = 256 * 1024


def _chunks(request: HttpRequest) -> Iterator[bytes]:
    while chunk := request.read(_CHUNK):
        yield chunk


async def _export(request: HttpRequest, signal: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    result = await receive(
        IncomingRequest(
            signal=signal,
            content_type=request.META.get("CONTENT_TYPE", ""),
            content_encoding=request.META.get("HTTP_CONTENT_ENCODING", ""),
            authorization=request.META.get("HTTP_AUTHORIZATION", ""),
            body_chunks=_chunks(request),
        )
    )
    response = HttpResponse(result.body, status=result.status, content_type=result.content_type)
    for name, value in result.headers.items():
        response[name] = value
    return response


@csrf_exempt
async def traces(request: HttpRequest) -> HttpResponse:
    return await _export(request, TRACES)


@csrf_exempt
async def logs(request: HttpRequest) -> HttpResponse:
    return await _export(request, LOGS)
