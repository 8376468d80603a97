"""Body size limits and incremental decompression: a request is refused as soon as it would exceed the limit.

The OTLP spec caps the body *after* decompression (64 MiB recommended). Inflating a whole gzip bomb to measure it
would be the attack, so bodies are inflated chunk by chunk with ``max_length`` and abandoned at the cap.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable

from django.conf import settings

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_CHUNK = 256 * 1024


class BodyTooLarge(Exception):
    """The (decompressed) body exceeds the limit: 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body exceeds the limit of {limit} bytes after decompression.")
        self.limit = limit


class UndecodableBody(Exception):
    """The body cannot be decompressed or parsed: 400 with this message."""


class UnsupportedEncoding(Exception):
    """A Content-Encoding we do not speak: 415."""


SUPPORTED_ENCODINGS = ("identity", "gzip", "deflate")


def _decompressor(encoding: str) -> zlib._Decompress | None:
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        # zlib-wrapped per RFC 9110; many clients send raw deflate: auto-detected below.
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none.")


def read_body(chunks: Iterable[bytes], encoding: str, limit: int) -> bytes:
    """Concatenate and inflate ``chunks`` (the raw request stream), never holding more than ``limit`` bytes."""
    encoding = encoding.strip().lower()
    inflater = _decompressor(encoding)
    if inflater is None:
        return _concatenate(chunks, limit)
    out = bytearray()
    raw_seen = 0
    first = True
    for chunk in chunks:
        if not chunk:
            continue
        raw_seen += len(chunk)
        if raw_seen > limit:
            raise BodyTooLarge(limit)
        if first and encoding == "deflate" and (chunk[0] & 0x0F) != 8:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate stream without the zlib header
        first = False
        data = chunk
        while data:
            try:
                piece = inflater.decompress(data, limit - len(out) + 1)
            except zlib.error as exc:
                raise UndecodableBody(f"The body is not valid {encoding} data: {exc}.") from None
            out += piece
            if len(out) > limit:
                raise BodyTooLarge(limit)
            data = inflater.unconsumed_tail
            if inflater.eof:
                break
    try:
        out += inflater.flush()
    except zlib.error as exc:
        raise UndecodableBody(f"The body is not valid {encoding} data: {exc}.") from None
    if len(out) > limit:
        raise BodyTooLarge(limit)
    if not inflater.eof and raw_seen:
        raise UndecodableBody(f"The {encoding} body is truncated.")
    return bytes(out)


def _concatenate(chunks: Iterable[bytes], limit: int) -> bytes:
    """An uncompressed body: one copy at the end (growing a buffer chunk by chunk copies a 1.6 MB body ~3 times)."""
    parts: list[bytes] = []
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def configured_int(name: str, default: int) -> int:
    """An integer knob: the Django setting if defined, else the environment variable, else ``default``."""
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def max_body_bytes() -> int:
    return configured_int("KEEL_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
