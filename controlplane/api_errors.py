"""Every API error is ``{"detail": …}``; validation errors keep their field names under ``detail``."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from controlplane.tenancy import NoProjectAccess


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, NoProjectAccess):
        return Response({"detail": str(exc)}, status=403)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if not (isinstance(data, dict) and set(data) == {"detail"}):
        response.data = {"detail": data}
    return response
