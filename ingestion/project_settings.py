"""What the receiver needs to know about a project per request, cached a few seconds per process.

One ORM read per project every few seconds, not per request: the ingest rate limit, and whether the project has
extra PII patterns (its requests then go to the landing table whose view applies them). A change takes effect
within the cache period (the ClickHouse dictionary the views read is reloaded at once on save, see
:mod:`ingestion.project_sync`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from controlplane.models import Project

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class IngestSettings:
    rate_limit: int  # records per second, 0 = unlimited
    extra_patterns: bool


_UNKNOWN = IngestSettings(rate_limit=0, extra_patterns=False)
_cache: dict[str, tuple[float, IngestSettings]] = {}
_lock = threading.Lock()


def ingest_settings(tenant: str) -> IngestSettings:
    """The project's ingest settings by tenant id (never reused, unlike pk); a sync ORM call on a cache miss."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(tenant)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    row = Project.objects.filter(tenant_id=tenant).values_list("ingest_rate_limit", "pii_extra_patterns").first()
    value = _UNKNOWN if row is None else IngestSettings(int(row[0] or 0), any(p for p in (row[1] or []) if p))
    with _lock:
        _cache[tenant] = (now, value)
    return value


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def forget(tenant: str) -> None:
    """Drop one project's cached settings (its save changed them: this process sees the change at once)."""
    with _lock:
        _cache.pop(tenant, None)
