"""Slack-compatible incoming webhook (also accepted by Mattermost, Rocket.Chat, Discord's /slack endpoint)."""

from __future__ import annotations

import json
from typing import Any

from anomaly.notifications.http import post_json

_ICONS = {"opened": ":rotating_light:", "escalated": ":rotating_light:", "renotified": ":bell:",
          "acknowledged": ":eyes:", "resolved": ":white_check_mark:"}


def message(payload: dict[str, Any]) -> dict[str, Any]:
    event = str(payload.get("event", ""))
    headline = f"{_ICONS.get(event, ':bell:')} [{payload['severity'].upper()}] {payload['title']} — {event}"
    evidence = payload.get("evidence") or {}
    fields = [
        f"*Project* {payload['project']}",
        f"*Detector* {payload['detector']}",
        f"*Series* {', '.join(f'{k}={v}' for k, v in payload['series'].items())}",
    ]
    if evidence:
        fields.append(
            f"*Observed* {evidence.get('observed')} vs expected {evidence.get('expected')} "
            f"(band {evidence.get('lower')}–{evidence.get('upper')}, {evidence.get('method')})"
        )
    if payload.get("reason"):
        fields.append(f"*Why* {payload['reason']}")
    return {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(fields)}},
        ],
    }


def send(config: dict[str, Any], payload: dict[str, Any]) -> int:
    return post_json(str(config["url"]), json.dumps(message(payload)).encode())
