"""Every API error is ``{"detail": …}``; validation errors keep their field names under ``detail``."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from django.views.defaults import server_error as default_server_error
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from controlplane.tenancy import NoProjectAccess
from dashboards.filters import TimeRangeError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, NoProjectAccess):
        return Response({"detail": str(exc)}, status=403)
    if isinstance(exc, TimeRangeError):
        return Response({"detail": {exc.param: [str(exc)]}}, status=400)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if not (isinstance(data, dict) and set(data) == {"detail"}):
        response.data = {"detail": data}
    return response


_API_PREFIXES = ("/api/", "/v1/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """JSON 404 under the API and OTLP paths (clients parse it); Django's page elsewhere."""
    if request.path.startswith(_API_PREFIXES):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(_API_PREFIXES):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return default_server_error(request)
