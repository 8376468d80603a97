"""Queue and deliver notification attempts; the retry policy lives here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from anomaly.models import (
    SEVERITY_RANK,
    Alert,
    AttemptStatus,
    ChannelKind,
    NotificationAttempt,
    NotificationChannel,
    Severity,
)
from anomaly.notifications import email, pagerduty, slack, webhook
from anomaly.notifications.http import HttpDeliveryError
from controlplane.metrics import NOTIFICATIONS

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
# A claimed attempt whose worker died is picked up again after this long.
SEND_LEASE = timedelta(minutes=5)

# Which alert events each kind of channel carries.
_EVENTS: dict[str, set[str]] = {
    ChannelKind.WEBHOOK: {"opened", "escalated", "renotified", "acknowledged", "resolved"},
    ChannelKind.SLACK: {"opened", "escalated", "renotified", "acknowledged", "resolved"},
    ChannelKind.EMAIL: {"opened", "escalated", "renotified", "resolved"},
    ChannelKind.PAGERDUTY: set(pagerduty.EVENT_ACTIONS),
}
_SENDERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], int]] = {
    ChannelKind.WEBHOOK: webhook.send,
    ChannelKind.SLACK: slack.send,
    ChannelKind.EMAIL: email.send,
    ChannelKind.PAGERDUTY: pagerduty.send,
}


class DeliveryError(Exception):
    pass


def backoff_seconds(attempts: int) -> float:
    """Delay before try ``attempts + 1``: base, 2×base, 4×base … capped at an hour."""
    base = float(getattr(settings, "KEEL_NOTIFY_RETRY_BASE_SECONDS", 30))
    return float(min(base * 2 ** max(attempts - 1, 0), 3600.0))


def _payload(alert: Alert, event: str) -> dict[str, Any]:
    from anomaly.alerts import alert_payload

    latest = alert.detections.order_by("-created_at", "-id").first()
    evidence = None
    if latest is not None:
        evidence = {
            "method": latest.method, "metric": latest.metric, "observed": latest.observed,
            "expected": latest.expected, "lower": latest.lower, "upper": latest.upper, "score": latest.score,
            "p_value": latest.p_value, "window_start": latest.window_start.isoformat(),
            "window_end": latest.window_end.isoformat(),
        }
    reason = alert.transitions.order_by("-at", "-id").values_list("reason", flat=True).first() or ""
    return {**alert_payload(alert), "event": event, "evidence": evidence, "reason": reason}


def queue_event(alert: Alert, event: str, event_seq: int, *, now: datetime | None = None) -> list[NotificationAttempt]:
    """Create one attempt per matching channel (idempotent per event) and deliver them after commit."""
    from anomaly.alerts import is_silenced

    now = now or timezone.now()
    if alert.incident_id is not None:
        return []  # grouped into another alert's incident: that one paged
    if alert.snoozed_until and alert.snoozed_until > now and event != "resolved":
        return []
    if is_silenced(alert, now):
        logger.info("alert %s %s is silenced; not notifying", alert.pk, event)
        return []
    rank = SEVERITY_RANK[Severity(alert.severity)]
    channels = [
        c for c in NotificationChannel.objects.filter(project_id=alert.project_id, enabled=True)
        if event in _EVENTS.get(c.kind, set()) and SEVERITY_RANK[Severity(c.min_severity)] <= rank
    ]
    if not channels:
        return []
    payload = _payload(alert, event)
    created: list[NotificationAttempt] = []
    for channel in channels:
        attempt, was_created = NotificationAttempt.objects.get_or_create(
            channel=channel, alert=alert, event=event, event_seq=event_seq, defaults={"payload": payload}
        )
        if was_created:
            created.append(attempt)
    ids = [a.pk for a in created]
    transaction.on_commit(lambda: _enqueue(ids))
    return created


def _enqueue(ids: list[int]) -> None:
    for attempt_id in ids:
        try:
            current_app.send_task("anomaly.deliver_notification", args=[attempt_id], expires=3600)
        except Exception:  # the broker is down: the retry sweep delivers it later
            logger.exception("could not enqueue notification attempt %s", attempt_id)


def _claim(attempt_id: int, now: datetime) -> bool:
    due = Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
    open_states = [AttemptStatus.PENDING, AttemptStatus.RETRYING, AttemptStatus.SENDING]
    claimed = NotificationAttempt.objects.filter(due, pk=attempt_id, status__in=open_states).update(
        status=AttemptStatus.SENDING, next_retry_at=now + SEND_LEASE
    )
    return claimed == 1


def deliver(attempt_id: int, *, now: datetime | None = None) -> float | None:
    """Try one attempt once. Returns seconds until the next try when it should be retried, else None.

    Safe to call twice (a redelivered task): the claim lets only one caller send, and a delivered attempt is
    never sent again.
    """
    now = now or timezone.now()
    if not _claim(attempt_id, now):
        attempt = NotificationAttempt.objects.filter(pk=attempt_id).only("status", "next_retry_at").first()
        if attempt is not None and attempt.status == AttemptStatus.RETRYING and attempt.next_retry_at:
            return max((attempt.next_retry_at - now).total_seconds(), 1.0)
        return None
    attempt = NotificationAttempt.objects.select_related("channel").get(pk=attempt_id)
    attempt.attempts += 1
    try:
        sender = _SENDERS[attempt.channel.kind]
        code = sender(attempt.channel.config, attempt.payload)
    except Exception as exc:  # any failure is this channel's problem alone
        attempt.error = str(exc)[:2000]
        attempt.response_code = getattr(exc, "status", None)
        if attempt.attempts >= MAX_ATTEMPTS or (isinstance(exc, KeyError | ValueError) and not isinstance(
            exc, HttpDeliveryError
        )):
            attempt.status = AttemptStatus.FAILED
            attempt.next_retry_at = None
            delay = None
        else:
            delay = backoff_seconds(attempt.attempts)
            attempt.status = AttemptStatus.RETRYING
            attempt.next_retry_at = now + timedelta(seconds=delay)
        logger.warning("notification %s via %s failed (try %d): %s", attempt.pk, attempt.channel, attempt.attempts,
                       attempt.error)
        NOTIFICATIONS.labels(attempt.channel.kind, str(attempt.status)).inc()
    else:
        NOTIFICATIONS.labels(attempt.channel.kind, "delivered").inc()
        attempt.status = AttemptStatus.DELIVERED
        attempt.response_code = code
        attempt.error = ""
        attempt.delivered_at = now
        attempt.next_retry_at = None
        delay = None
    attempt.save(update_fields=["attempts", "status", "response_code", "error", "delivered_at", "next_retry_at"])
    return delay


def deliver_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Deliver every attempt that is due (first tries whose task was lost, retries, expired leases)."""
    now = now or timezone.now()
    due = Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
    ids = list(
        NotificationAttempt.objects.filter(due, status__in=[AttemptStatus.PENDING, AttemptStatus.RETRYING,
                                                            AttemptStatus.SENDING])
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for attempt_id in ids:
        deliver(attempt_id, now=now)
    return len(ids)
