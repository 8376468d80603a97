"""Per-project ingest rate limits (spans or log records per second), as in-process token buckets.

Each Keel process keeps its own buckets, so with N processes a project may briefly reach N× its limit; a shared
(Redis) bucket would fix that at the cost of a round trip per request. The limit comes from
``Project.ingest_rate_limit`` (0 = unlimited), read through :mod:`ingestion.project_settings` (cached a few seconds).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ingestion import project_settings


@dataclass
class _Bucket:
    rate: float
    tokens: float
    updated: float


class RateLimiter:
    """Token bucket per project: capacity = one second of the limit; a request larger than that waits for a full
    bucket and then runs the bucket into debt, so big batches are allowed but the average rate holds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, tenant: str, rate: int, records: int) -> float:
        """Take ``records`` tokens; returns 0 when allowed, else the seconds to wait before retrying."""
        if rate <= 0 or records <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(tenant)
            if bucket is None or bucket.rate != rate:
                bucket = self._buckets[tenant] = _Bucket(float(rate), float(rate), now)
            bucket.tokens = min(bucket.rate, bucket.tokens + (now - bucket.updated) * bucket.rate)
            bucket.updated = now
            needed = min(float(records), bucket.rate)
            if bucket.tokens >= needed:
                bucket.tokens -= records
                return 0.0
            return (needed - bucket.tokens) / bucket.rate


def clear_cache() -> None:
    project_settings.clear_cache()


def retry_after_seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


limiter = RateLimiter()
