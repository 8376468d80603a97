"""What the receiver needs to know about a project per request, cached a few seconds per process.

One ORM read per project every few seconds, not per request: the ingest rate limit, and whether the project's
content needs more than the built-in redaction — extra PII patterns or capture "none" (its requests then go to the
landing table whose view applies every switch, see :mod:`ingestion.clickhouse.landing`). A change takes effect
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
    custom_content: bool  # extra PII patterns, or content capture "none"


_UNKNOWN = IngestSettings(rate_limit=0, custom_content=False)
_cache: dict[str, tuple[float, IngestSettings]] = {}
_lock = threading.Lock()


def ingest_settings(tenant: str) -> IngestSettings:
    """The project's ingest settings by tenant id (never reused, unlike pk); a sync ORM call on a cache miss."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(tenant)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    row = (
        Project.objects.filter(tenant_id=tenant)
        .values_list("ingest_rate_limit", "pii_extra_patterns", "content_capture")
        .first()
    )
    if row is None:
        value = _UNKNOWN
    else:
        limit, patterns, capture = row
        value = IngestSettings(int(limit or 0), any(p for p in (patterns or []) if p) or capture == "none")
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
