"""Incremental inflation with a cap: a gzip bomb is refused after at most the limit, never inflated whole."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest

from django.test import Client

from controlplane.apikeys import issue_key
from ingestion.otlp.limits import BodyTooLarge, UndecodableBody, read_body

GIB = 1024**3


def _bomb(size: int = GIB) -> bytes:
    """``size`` zero bytes, gzip-compressed (about 1 MB for 1 GiB), built without holding the plain data."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [c.compress(block) for _ in range(size // len(block))]
    parts.append(c.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _bomb()


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_gzip_bomb_stops_at_the_limit_with_bounded_memory(bomb: bytes) -> None:
    assert len(bomb) < 2 * 1024 * 1024
    limit = 16 * 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            read_body(_chunks(bomb), "gzip", limit)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit  # never anywhere near the 1 GiB it would inflate to


@pytest.mark.django_db
def test_gzip_bomb_over_http_is_413(project, bomb: bytes) -> None:
    key = issue_key(project, ["ingest"]).secret
    response = Client().generic("POST", "/v1/traces", bomb, content_type="application/x-protobuf",
                                HTTP_CONTENT_ENCODING="gzip", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 413


def test_inflation_round_trips_and_rejects_garbage() -> None:
    raw = b"spans " * 10_000
    assert read_body(_chunks(gzip.compress(raw), 100), "gzip", len(raw)) == raw
    assert read_body(_chunks(zlib.compress(raw), 7), "deflate", len(raw)) == raw
    assert read_body([raw], "identity", len(raw)) == raw
    with pytest.raises(BodyTooLarge):
        read_body([raw], "", len(raw) - 1)
    with pytest.raises(BodyTooLarge):
        read_body([gzip.compress(raw)], "gzip", len(raw) - 1)
    with pytest.raises(UndecodableBody, match="not valid gzip"):
        read_body([b"definitely not gzip"], "gzip", 1000)
    with pytest.raises(UndecodableBody, match="truncated"):
        read_body([gzip.compress(raw)[:50]], "gzip", len(raw))
