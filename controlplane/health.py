"""Liveness and readiness probes."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_clickhouse() -> None:
    from ingestion.clickhouse.client import get_client

    get_client().query("SELECT 1")


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):
        return
    from controlplane.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


CHECKS: dict[str, Callable[[], None]] = {
    "clickhouse": _check_clickhouse,
    "database": _check_database,
    "broker": _check_broker,
}


def readiness() -> tuple[bool, dict[str, dict[str, object]]]:
    parts: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the reason is reported, not raised
            parts[name] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        else:
            parts[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    return all(bool(p["ok"]) for p in parts.values()), parts


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    ready, parts = readiness()
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": parts}, status=200 if ready else 503)
