"""HMAC-SHA256 signed webhook for any gateway: the route's new policy section, POSTed as JSON.

Headers: ``X-Keel-Timestamp: <unix seconds>`` and ``X-Keel-Signature: sha256=<hex>`` where the MAC is
HMAC-SHA256(secret, ``<timestamp>.<raw body>``). Receivers check the signature with ``verify_signature`` (or the
same three lines in their language) and reject timestamps older than five minutes. A non-2xx answer fails the push.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import requests

from controlplane.models import Action, GatewayAdapter, Route, RouteRevision
from controlplane.routing import policy_document

MAX_SKEW_S = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, now: float | None = None) -> bool:
    try:
        age = abs((now if now is not None else time.time()) - float(timestamp))
    except ValueError:
        return False
    return age <= MAX_SKEW_S and hmac.compare_digest(sign(secret, timestamp, body), signature)


def payload(route: Route, revision: RouteRevision, action: Action | None) -> dict[str, Any]:
    return {"event": "routing.revision", "project": route.project.slug, "route": route.name,
            "environment": route.environment, "action": {"id": action.pk, "kind": action.kind} if action else None,
            "policy_version_after": policy_document.current_version(route.project_id) + 1,
            "policy": {"route": route.name, "environment": route.environment, **revision.as_policy()}}


def push(adapter: GatewayAdapter, route: Route, revision: RouteRevision, action: Action | None) -> Any:
    from controlplane.gateways.push import PushResult

    body = json.dumps(payload(route, revision, action), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Keel-Timestamp": timestamp,
               "X-Keel-Signature": sign(adapter.secret, timestamp, body)}
    call: dict[str, Any] = {"method": "POST", "url": adapter.url, "body": json.loads(body)}
    try:
        response = requests.post(adapter.url, data=body, headers=headers, timeout=adapter.timeout_s)
        call.update(status=response.status_code, response=response.text[:2000])
        ok = 200 <= response.status_code < 300
        error = "" if ok else f"HTTP {response.status_code}: {response.text[:300]}"
    except requests.RequestException as exc:
        call.update(status=None, response=str(exc)[:2000])
        ok, error = False, str(exc)
    return PushResult(adapter=adapter, ok=ok, calls=[call], error=error)
