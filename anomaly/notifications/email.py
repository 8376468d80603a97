"""Email through Django's configured mail backend (SMTP in production, locmem in tests)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail


def render(payload: dict[str, Any]) -> tuple[str, str]:
    subject = f"[Keel {payload['severity']}] {payload['title']} — {payload['event']}"
    evidence = payload.get("evidence") or {}
    lines = [
        f"Project: {payload['project']}",
        f"Detector: {payload['detector']}",
        f"Series: {', '.join(f'{k}={v}' for k, v in payload['series'].items())}",
        f"State: {payload['state']}",
        f"Opened: {payload['opened_at']}",
    ]
    if evidence:
        lines.append(
            f"Observed {evidence.get('observed')} vs expected {evidence.get('expected')} "
            f"(band {evidence.get('lower')} to {evidence.get('upper')}; method {evidence.get('method')})"
        )
    if payload.get("reason"):
        lines.append(f"Why: {payload['reason']}")
    return subject[:250], "\n".join(lines) + "\n"


def send(config: dict[str, Any], payload: dict[str, Any]) -> int:
    recipients = [str(r) for r in config.get("to", []) if r]
    if not recipients:
        raise ValueError("email channel has no recipients ('to')")
    subject, body = render(payload)
    send_mail(subject, body, getattr(settings, "DEFAULT_FROM_EMAIL", "keel@localhost"), recipients)
    return 250
