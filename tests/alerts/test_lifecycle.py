"""The alert service: transitions, dedup, cooldown re-open, manual resolve respected, live events through Channels."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import async_to_sync

from channels.layers import get_channel_layer

from anomaly import alerts
from anomaly.models import Alert, AlertState, ChannelKind, NotificationAttempt, NotificationChannel
from controlplane.realtime import project_group
from tests.alerts.helpers import T0, observation

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user("carol")


def test_every_transition_is_recorded_with_who_and_why(project, user, django_user_model) -> None:  # type: ignore[no-untyped-def]
    dave = django_user_model.objects.create_user("dave")
    alert = alerts.observe(observation(project), now=T0)
    assert alert is not None
    alerts.acknowledge(alert, actor=user, reason="on it", now=T0 + dt.timedelta(minutes=1))
    alerts.assign(alert, actor=user, assignee=dave, reason="dave owns support", now=T0 + dt.timedelta(minutes=2))
    alerts.snooze(alert, actor=dave, until=T0 + dt.timedelta(hours=1), reason="waiting for provider",
                  now=T0 + dt.timedelta(minutes=3))
    alerts.resolve(alert, actor=dave, reason="provider fixed it", now=T0 + dt.timedelta(minutes=40))
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED and alert.assignee == dave
    assert alert.resolved_at == T0 + dt.timedelta(minutes=40)
    rows = list(alert.transitions.values_list("action", "from_state", "to_state", "actor__username", "reason"))
    assert rows == [
        ("opened", "", "firing", None, rows[0][4]),
        ("acknowledged", "firing", "acknowledged", "carol", "on it"),
        ("assigned", "acknowledged", "acknowledged", "carol", "dave owns support"),
        ("snoozed", "acknowledged", "acknowledged", "dave", "waiting for provider"),
        ("resolved", "acknowledged", "resolved", "dave", "manual: provider fixed it"),
    ]
    assert "observed 2400 vs expected 850" in rows[0][4]


def test_invalid_changes_are_refused(project, user) -> None:  # type: ignore[no-untyped-def]
    alert = alerts.observe(observation(project), now=T0)
    with pytest.raises(alerts.AlertError):
        alerts.snooze(alert, actor=user, until=T0 - dt.timedelta(minutes=1), now=T0)
    alerts.resolve(alert, actor=user, now=T0)
    with pytest.raises(alerts.AlertError):
        alerts.acknowledge(alert, actor=user, now=T0)
    with pytest.raises(alerts.AlertError):
        alerts.resolve(alert, actor=user, now=T0)
    assert alert.transitions.count() == 2


def test_repeated_observations_keep_one_alert_and_escalate_once(project) -> None:  # type: ignore[no-untyped-def]
    first = alerts.observe(observation(project, score=1.5), now=T0)
    for minute in range(1, 4):
        again = alerts.observe(observation(project, score=1.6), now=T0 + dt.timedelta(minutes=minute))
        assert again is not None and again.pk == first.pk
    escalated = alerts.observe(observation(project, score=4.0), now=T0 + dt.timedelta(minutes=5))
    alerts.observe(observation(project, score=4.5), now=T0 + dt.timedelta(minutes=6))
    assert Alert.objects.filter(project=project).count() == 1
    assert escalated.severity == "critical"
    assert list(escalated.transitions.values_list("action", flat=True)) == ["opened", "escalated"]
    assert escalated.detections.count() == 2  # the evidence at opening and at escalation
    escalated.refresh_from_db()
    assert escalated.last_seen_at == T0 + dt.timedelta(minutes=6)


def test_breach_within_cooldown_reopens_silently(project) -> None:  # type: ignore[no-untyped-def]
    NotificationChannel.objects.create(project=project, name="hook", kind=ChannelKind.WEBHOOK,
                                       config={"url": "http://127.0.0.1:9/"})
    alert = alerts.observe(observation(project), now=T0)
    alerts.auto_resolve(alert, now=T0 + dt.timedelta(minutes=10))
    again = alerts.observe(observation(project, started=T0 + dt.timedelta(minutes=20)),
                           now=T0 + dt.timedelta(minutes=20))
    assert again.pk == alert.pk and again.state == AlertState.FIRING and again.resolved_at is None
    assert list(again.transitions.values_list("action", flat=True)) == ["opened", "resolved", "reopened"]
    assert sorted(NotificationAttempt.objects.filter(alert=alert).values_list("event", flat=True)) == [
        "opened", "resolved"]
    # After the cooldown a new breach is a new incident.
    alerts.auto_resolve(again, now=T0 + dt.timedelta(minutes=30))
    later = alerts.observe(observation(project, started=T0 + dt.timedelta(hours=3)), now=T0 + dt.timedelta(hours=3))
    assert later.pk != alert.pk


def test_manual_resolve_is_not_undone_by_the_same_episode(project, user) -> None:  # type: ignore[no-untyped-def]
    alert = alerts.observe(observation(project), now=T0)
    alerts.resolve(alert, actor=user, reason="false positive", now=T0 + dt.timedelta(minutes=1))
    assert alerts.observe(observation(project), now=T0 + dt.timedelta(minutes=2)) is None
    assert Alert.objects.filter(project=project).count() == 1
    fresh = alerts.observe(observation(project, started=T0 + dt.timedelta(hours=2)), now=T0 + dt.timedelta(hours=2))
    assert fresh is not None and fresh.pk != alert.pk


def test_alert_changes_reach_subscribers_of_the_project_group(  # type: ignore[no-untyped-def]
    project, user, django_capture_on_commit_callbacks
) -> None:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(project_group(project.pk), channel)
    with django_capture_on_commit_callbacks(execute=True):
        alert = alerts.observe(observation(project), now=T0)
    message = async_to_sync(layer.receive)(channel)
    assert message["type"] == "project.event" and message["kind"] == "alert"
    assert message["data"]["id"] == alert.pk and message["data"]["event"] == "opened"
    assert message["data"]["state"] == "firing"
    with django_capture_on_commit_callbacks(execute=True):
        alerts.acknowledge(alert, actor=user, reason="mine", now=T0)
    message = async_to_sync(layer.receive)(channel)
    assert (message["data"]["event"], message["data"]["state"], message["data"]["reason"]) == (
        "acknowledged", "acknowledged", "mine")


def test_routing_pages_become_critical_alerts_deduped_while_open(project) -> None:  # type: ignore[no-untyped-def]
    first = alerts.raise_alert(project=project, title="push to gateway failed", detail="HTTP 502", route="support",
                               now=T0)
    again = alerts.raise_alert(project=project, title="push to gateway failed", detail="HTTP 502", route="support",
                               now=T0 + dt.timedelta(minutes=1))
    assert first is not None and again.pk == first.pk
    assert (first.detector, first.severity, first.route) == ("routing", "critical", "support")
    assert first.detections.get().details == {"detail": "HTTP 502"}
