"""PagerDuty Events API v2: trigger / acknowledge / resolve, deduplicated by the alert fingerprint."""

from __future__ import annotations

import json
from typing import Any

from anomaly.notifications.http import post_json

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
EVENT_ACTIONS = {
    "opened": "trigger",
    "escalated": "trigger",
    "renotified": "trigger",
    "acknowledged": "acknowledge",
    "resolved": "resolve",
}
_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def event(config: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    action = EVENT_ACTIONS[str(payload["event"])]
    body: dict[str, Any] = {
        "routing_key": str(config["routing_key"]),
        "event_action": action,
        "dedup_key": payload["fingerprint"],
    }
    if action == "trigger":
        body["payload"] = {
            "summary": f"{payload['title']}"[:1024],
            "source": f"keel/{payload['project']}",
            "severity": _SEVERITY.get(str(payload["severity"]), "warning"),
            "timestamp": payload["opened_at"],
            "component": payload.get("route") or None,
            "group": payload["project"],
            "class": payload["detector"],
            "custom_details": {"series": payload["series"], "evidence": payload.get("evidence"),
                               "alert_id": payload["id"]},
        }
        body["client"] = "Keel"
    return body


def send(config: dict[str, Any], payload: dict[str, Any]) -> int:
    url = str(config.get("events_url") or DEFAULT_EVENTS_URL)
    return post_json(url, json.dumps(event(config, payload)).encode())
