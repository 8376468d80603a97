"""Helpers shared by tests: run Keel's manage.py in a subprocess with a given environment."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COLLECTOR_COLUMNS = [
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode", "StatusMessage",
    "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
]


def manage(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "DJANGO_")) and k not in {
        "DATABASE_URL", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "CELERY_BROKER_URL"}}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=timeout, check=False,
    )


def db_thread(target: Callable[[], object]) -> threading.Thread:
    """A thread that closes its own database connections when ``target`` returns. Django's test client never closes
    them, and an open PostgreSQL session left by a finished thread keeps the test database from being dropped."""

    def run() -> None:
        from django.db import connections

        try:
            target()
        finally:
            connections.close_all()

    return threading.Thread(target=run)
