"""Generic webhook: the alert event as JSON, signed with HMAC-SHA256 so the receiver can trust it.

``X-Keel-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret, "<t>.<body>")>``; the timestamp is inside the
signed material (and repeated in ``X-Keel-Timestamp``) so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import requests

from anomaly.notifications.http import post_json

SIGNATURE_HEADER = "X-Keel-Signature"
TIMESTAMP_HEADER = "X-Keel-Timestamp"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, body: bytes, header: str, *, now: float | None = None, tolerance: int = DEFAULT_TOLERANCE_SECONDS
) -> bool:
    """What a receiver runs: constant-time compare and a freshness check."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def send(config: dict[str, Any], payload: dict[str, Any], session: requests.Session | None = None) -> int:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {TIMESTAMP_HEADER: str(timestamp), "X-Keel-Event": str(payload.get("event", ""))}
    if config.get("secret"):
        headers[SIGNATURE_HEADER] = sign(str(config["secret"]), body, timestamp)
    return post_json(str(config["url"]), body, headers)
