"""Opaque keyset cursors for the calls API: the last row's (timestamp ns, trace id, span id), base64url JSON.

A cursor only says where to resume; every value in it is bound as a query parameter, so a forged cursor can
at worst skip rows of the caller's own project.
"""

from __future__ import annotations

import base64
import binascii
import json

from ingestion.selectors.calls import CallPosition


class BadCursor(ValueError):
    pass


def encode_cursor(position: CallPosition) -> str:
    raw = json.dumps([position.timestamp_ns, position.trace_id, position.span_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> CallPosition:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, trace, span = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise BadCursor("Invalid cursor; use the `next` URL of the previous page.") from None
    if not (isinstance(ts, int) and 0 <= ts < 2**63 and isinstance(trace, str) and isinstance(span, str)
            and len(trace) <= 64 and len(span) <= 32):
        raise BadCursor("Invalid cursor; use the `next` URL of the previous page.")
    return CallPosition(ts, trace, span)
