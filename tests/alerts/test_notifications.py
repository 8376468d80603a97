"""Notifications against real local HTTP servers (webhook, Slack, PagerDuty) and Django's locmem mail outbox."""

from __future__ import annotations

import datetime as dt
import json
import socket

import pytest

from django.core import mail

from anomaly import alerts
from anomaly.models import AttemptStatus, ChannelKind, NotificationAttempt, NotificationChannel, Silence
from anomaly.notifications import backoff_seconds, deliver, deliver_due, verify_signature
from anomaly.notifications.webhook import SIGNATURE_HEADER
from tests.alerts.helpers import T0, observation, serve

pytestmark = pytest.mark.django_db

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    yield from serve()


def _channel(project, kind: str, **config) -> NotificationChannel:  # type: ignore[no-untyped-def]
    return NotificationChannel.objects.create(project=project, name=f"{kind}-{len(config)}", kind=kind, config=config)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_is_signed_and_verifiable(project, receiver) -> None:  # type: ignore[no-untyped-def]
    _channel(project, ChannelKind.WEBHOOK, url=f"{receiver.url}/hook", secret=SECRET)
    alert = alerts.observe(observation(project), now=T0)
    assert deliver_due(now=T0) == 1
    [request] = receiver.on("/hook")
    header = request.headers[SIGNATURE_HEADER]
    assert verify_signature(SECRET, request.body, header)
    assert not verify_signature("wrong-secret", request.body, header)
    assert not verify_signature(SECRET, request.body.replace(b"support", b"suppor7"), header)
    assert not verify_signature(SECRET, request.body, header, now=int(request.headers["X-Keel-Timestamp"]) + 3600)
    body = request.json()
    assert body["event"] == "opened" and body["id"] == alert.pk and body["fingerprint"] == alert.fingerprint
    assert body["evidence"]["observed"] == 2400.0 and body["evidence"]["upper"] == 1000.0
    attempt = NotificationAttempt.objects.get(alert=alert)
    assert (attempt.status, attempt.attempts, attempt.response_code) == (AttemptStatus.DELIVERED, 1, 200)


def test_webhook_retries_with_exponential_backoff_then_succeeds(project, receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.script["/hook"] = [500, 502]
    _channel(project, ChannelKind.WEBHOOK, url=f"{receiver.url}/hook", secret=SECRET)
    alert = alerts.observe(observation(project), now=T0)
    attempt = NotificationAttempt.objects.get(alert=alert)

    assert deliver(attempt.pk, now=T0) == backoff_seconds(1) == 30
    attempt.refresh_from_db()
    assert (attempt.status, attempt.attempts, attempt.response_code) == (AttemptStatus.RETRYING, 1, 500)
    assert attempt.next_retry_at == T0 + dt.timedelta(seconds=30) and "HTTP 500" in attempt.error

    assert deliver_due(now=T0 + dt.timedelta(seconds=10)) == 0  # not due yet
    t1 = T0 + dt.timedelta(seconds=31)
    deliver_due(now=t1)
    attempt.refresh_from_db()
    assert (attempt.attempts, attempt.response_code) == (2, 502)
    assert attempt.next_retry_at == t1 + dt.timedelta(seconds=60)

    deliver_due(now=t1 + dt.timedelta(seconds=61))
    attempt.refresh_from_db()
    assert (attempt.status, attempt.attempts, attempt.response_code, attempt.error) == (
        AttemptStatus.DELIVERED, 3, 200, "")
    assert len(receiver.on("/hook")) == 3
    # Delivered is final: a redelivered task sends nothing more.
    assert deliver(attempt.pk, now=t1 + dt.timedelta(hours=1)) is None
    assert len(receiver.on("/hook")) == 3


def test_pagerduty_trigger_acknowledge_resolve_share_the_dedup_key(project, receiver, django_user_model) -> None:  # type: ignore[no-untyped-def]
    _channel(project, ChannelKind.PAGERDUTY, routing_key="R0UT1NGKEY", events_url=f"{receiver.url}/v2/enqueue")
    user = django_user_model.objects.create_user("oncall-ann")
    alert = alerts.observe(observation(project, score=5.0), now=T0)
    alerts.acknowledge(alert, actor=user, reason="looking", now=T0 + dt.timedelta(minutes=1))
    alerts.resolve(alert, actor=user, reason="rolled back", now=T0 + dt.timedelta(minutes=5))
    deliver_due(now=T0 + dt.timedelta(minutes=6))
    events = [r.json() for r in receiver.on("/v2/enqueue")]
    by_action = {e["event_action"]: e for e in events}
    assert sorted(by_action) == ["acknowledge", "resolve", "trigger"]
    assert {e["dedup_key"] for e in events} == {alert.fingerprint}
    assert {e["routing_key"] for e in events} == {"R0UT1NGKEY"}
    trigger = by_action["trigger"]["payload"]
    assert trigger["severity"] == "critical" and trigger["source"] == f"keel/{project.slug}"
    assert "latency p95" in trigger["summary"] and trigger["custom_details"]["evidence"]["observed"] == 2400.0
    assert "payload" not in by_action["resolve"]


def test_slack_and_email_payloads(project, receiver) -> None:  # type: ignore[no-untyped-def]
    _channel(project, ChannelKind.SLACK, url=f"{receiver.url}/slack")
    _channel(project, ChannelKind.EMAIL, to=["oncall@example.com"])
    alerts.observe(observation(project), now=T0)
    deliver_due(now=T0)
    [slack] = receiver.on("/slack")
    body = slack.json()
    assert "latency p95 anomaly on route=support" in body["text"] and "opened" in body["text"]
    assert body["blocks"][0]["type"] == "section" and "Observed* 2400.0" in body["blocks"][1]["text"]["text"]
    [message] = mail.outbox
    assert message.to == ["oncall@example.com"]
    assert message.subject.startswith("[Keel warning] latency p95 anomaly on route=support")
    assert "Observed 2400.0 vs expected 850.0" in message.body


def test_a_dead_channel_does_not_block_the_others(project, receiver) -> None:  # type: ignore[no-untyped-def]
    _channel(project, ChannelKind.WEBHOOK, url=f"http://127.0.0.1:{_closed_port()}/hook", secret=SECRET)
    _channel(project, ChannelKind.SLACK, url=f"{receiver.url}/slack")
    _channel(project, ChannelKind.EMAIL, to=[])  # misconfigured: fails for good, at once
    alert = alerts.observe(observation(project), now=T0)
    assert alert is not None
    deliver_due(now=T0)
    status = {a.channel.kind: a for a in NotificationAttempt.objects.filter(alert=alert).select_related("channel")}
    assert status[ChannelKind.SLACK].status == AttemptStatus.DELIVERED
    assert status[ChannelKind.WEBHOOK].status == AttemptStatus.RETRYING
    assert "ConnectionError" in status[ChannelKind.WEBHOOK].error
    assert status[ChannelKind.EMAIL].status == AttemptStatus.FAILED and "recipients" in status[ChannelKind.EMAIL].error
    assert len(receiver.on("/slack")) == 1


def test_silence_suppresses_notifications_not_the_alert(project, receiver) -> None:  # type: ignore[no-untyped-def]
    _channel(project, ChannelKind.WEBHOOK, url=f"{receiver.url}/hook", secret=SECRET)
    Silence.objects.create(project=project, route="support", starts_at=T0 - dt.timedelta(hours=1),
                           ends_at=T0 + dt.timedelta(hours=1), is_maintenance=True, comment="deploy")
    silenced = alerts.observe(observation(project), now=T0)
    other = alerts.observe(observation(project, route="search", started=T0 - dt.timedelta(hours=2)), now=T0)
    assert silenced is not None and silenced.transitions.filter(action="opened").exists()
    deliver_due(now=T0)
    assert not NotificationAttempt.objects.filter(alert=silenced).exists()
    # "search" opened within the cooldown of the silenced incident, so it is grouped and does not page either.
    assert other is not None and other.incident_id == silenced.pk
    assert receiver.requests == []


def test_grouping_pages_once_and_renotify_after_snooze(project, receiver, django_user_model) -> None:  # type: ignore[no-untyped-def]
    _channel(project, ChannelKind.WEBHOOK, url=f"{receiver.url}/hook", secret=SECRET)
    user = django_user_model.objects.create_user("oncall-bob")
    leader = alerts.observe(observation(project), now=T0)
    follower = alerts.observe(observation(project, detector="error_rate"), now=T0 + dt.timedelta(minutes=1))
    assert follower is not None and follower.incident_id == leader.pk
    deliver_due(now=T0 + dt.timedelta(minutes=1))
    assert [r.json()["event"] for r in receiver.requests] == ["opened"]

    alerts.snooze(leader, actor=user, until=T0 + dt.timedelta(minutes=30), reason="known deploy",
                  now=T0 + dt.timedelta(minutes=2))
    assert alerts.renotify_due(project, now=T0 + dt.timedelta(minutes=10)) == 0
    assert alerts.renotify_due(project, now=T0 + dt.timedelta(minutes=31)) == 1
    assert alerts.renotify_due(project, now=T0 + dt.timedelta(minutes=32)) == 0  # once per snooze
    deliver_due(now=T0 + dt.timedelta(minutes=31))
    assert [r.json()["event"] for r in receiver.requests] == ["opened", "renotified"]


def test_periodic_renotify_policy(project, receiver) -> None:  # type: ignore[no-untyped-def]
    _channel(project, ChannelKind.WEBHOOK, url=f"{receiver.url}/hook")
    alerts.observe(observation(project, renotify_minutes=60), now=T0)
    assert alerts.renotify_due(project, now=T0 + dt.timedelta(minutes=59)) == 0
    assert alerts.renotify_due(project, now=T0 + dt.timedelta(minutes=60)) == 1
    assert alerts.renotify_due(project, now=T0 + dt.timedelta(minutes=90)) == 0
    assert alerts.renotify_due(project, now=T0 + dt.timedelta(minutes=120)) == 1
    deliver_due(now=T0 + dt.timedelta(minutes=121))
    events = [json.loads(r.body)["event"] for r in receiver.requests]
    assert events == ["opened", "renotified", "renotified"]


def test_min_severity_filters_channels(project, receiver) -> None:  # type: ignore[no-untyped-def]
    pager = _channel(project, ChannelKind.WEBHOOK, url=f"{receiver.url}/critical-only")
    pager.min_severity = "critical"
    pager.save()
    alerts.observe(observation(project, score=1.5), now=T0)
    alerts.observe(observation(project, route="other", detector="volume", score=9.0,
                               started=T0 - dt.timedelta(days=1)), now=T0 + dt.timedelta(hours=2))
    deliver_due(now=T0 + dt.timedelta(hours=2))
    assert [r.json()["severity"] for r in receiver.on("/critical-only")] == ["critical"]
