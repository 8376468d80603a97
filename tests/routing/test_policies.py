"""Auto-remediation: matching, guardrails (each audited when it holds an action back), verification, budgets."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from django.utils import timezone

from controlplane.models import Action, AuditEntry, Budget, Policy
from controlplane.routing import policies


def make_alert(project, *, detector="latency_p95", severity="critical", minutes_open=10, route="chat-default",  # type: ignore[no-untyped-def]
               series_key=None):
    from anomaly.models import Alert

    opened = timezone.now() - timedelta(minutes=minutes_open)
    return Alert.objects.create(
        project=project, fingerprint=uuid.uuid4().hex, detector=detector, series_key=series_key or {"route": route},
        route=route, title=f"{detector} on {route}", severity=severity, opened_at=opened, last_seen_at=opened,
        episode_started_at=opened, group_key=uuid.uuid4().hex)


@pytest.fixture
def auto_reroute(route):  # type: ignore[no-untyped-def]
    return Policy.objects.create(project=route.project, name="latency → v2", detector="latency_p95", route=route,
                                 min_severity="warning", min_duration_s=60, action="reroute",
                                 reroute_to=route.deployments.get(gateway_id="chat-default-v2"), mode="auto",
                                 cooldown_s=600, max_actions_per_hour=3, min_calls=20, verify_after_s=300)


def events(project):  # type: ignore[no-untyped-def]
    return list(AuditEntry.objects.filter(project=project, event__startswith="policy.").order_by("id")
                .values_list("event", flat=True))


def test_automatic_reroute_runs_and_is_audited(route, auto_reroute, insert_calls) -> None:  # type: ignore[no-untyped-def]
    insert_calls(route.project.tenant_id, n=40, latency_ms=2000)
    alert = make_alert(route.project)
    (decision,) = policies.on_alert_fired(alert.pk)
    assert decision.outcome == "executed", decision
    action = Action.objects.get(pk=decision.action_id)
    assert action.automatic and action.alert_id == alert.pk and action.actor == f"policy:{auto_reroute.pk}"
    assert route.revisions.get(is_active=True).effective_weights() == {"chat-default-v2": 100.0}
    assert action.verification["metric"] == "latency_p95_ms" and action.verification["before"] == pytest.approx(2000)
    assert events(route.project) == ["policy.executed"]


@pytest.mark.parametrize(("calls", "minutes_open", "severity", "expected"), [
    (5, 10, "critical", "low volume"),
    (40, 0, "critical", None),  # too young: not matched at all
    (40, 10, "info", None),  # severity below threshold
])
def test_guardrails_and_matching(route, auto_reroute, insert_calls, calls, minutes_open, severity,  # type: ignore[no-untyped-def]
                                 expected) -> None:
    insert_calls(route.project.tenant_id, n=calls)
    (decision,) = policies.on_alert_fired(make_alert(route.project, minutes_open=minutes_open, severity=severity).pk)
    assert route.revisions.get(is_active=True).number == 1
    if expected is None:
        assert decision.outcome == "not_matched" and events(route.project) == []
    else:
        assert decision.outcome == "held_back" and expected in decision.reason
        entry = AuditEntry.objects.get(project=route.project, event="policy.held_back")
        assert expected in entry.summary and entry.data["guard"]["calls_15m"] == calls


def test_stale_data_is_held_back(route, auto_reroute, insert_calls) -> None:  # type: ignore[no-untyped-def]
    insert_calls(route.project.tenant_id, n=40, at=timezone.now() - timedelta(minutes=12))
    auto_reroute.max_staleness_s = 300
    auto_reroute.save()
    (decision,) = policies.on_alert_fired(make_alert(route.project).pk)
    assert decision.outcome == "held_back" and "stale data" in decision.reason


def test_cooldown_holds_the_second_action(route, auto_reroute, insert_calls) -> None:  # type: ignore[no-untyped-def]
    insert_calls(route.project.tenant_id, n=40)
    assert policies.on_alert_fired(make_alert(route.project).pk)[0].outcome == "executed"
    (second,) = policies.on_alert_fired(make_alert(route.project).pk)
    assert second.outcome == "held_back" and "cooldown" in second.reason
    assert events(route.project) == ["policy.executed", "policy.held_back"]


def test_pause_never_takes_the_last_healthy_deployment(route, insert_calls) -> None:  # type: ignore[no-untyped-def]
    Policy.objects.create(project=route.project, name="pause bad", action="pause", mode="auto", min_calls=1,
                          min_duration_s=0)
    insert_calls(route.project.tenant_id, n=5)
    alert = make_alert(route.project, detector="error_rate", series_key={"route": "chat-default",
                                                                          "model_version": "model-v1"})
    (decision,) = policies.on_alert_fired(alert.pk)
    assert decision.outcome == "held_back" and "last healthy deployment" in decision.reason
    assert route.revisions.get(is_active=True).number == 1


def test_suggest_and_approve_modes_only_record(route, insert_calls) -> None:  # type: ignore[no-untyped-def]
    for mode in ("suggest", "approve"):
        Policy.objects.create(project=route.project, name=mode, action="rollback", mode=mode, min_calls=1,
                              min_duration_s=0)
    insert_calls(route.project.tenant_id, n=5)
    outcomes = sorted(d.outcome for d in policies.on_alert_fired(make_alert(route.project).pk))
    assert outcomes == ["awaiting_approval", "suggested"]
    assert not Action.objects.filter(route=route).exists()


def test_verification_reverts_and_pages_when_not_recovered(route, auto_reroute, insert_calls) -> None:  # type: ignore[no-untyped-def]
    tenant = route.project.tenant_id
    insert_calls(tenant, n=40, latency_ms=2000, at=timezone.now() - timedelta(minutes=2))
    (decision,) = policies.on_alert_fired(make_alert(route.project).pk)
    action = Action.objects.get(pk=decision.action_id)
    insert_calls(tenant, deployment="chat-default-v2", model="model-v2", n=20, latency_ms=1900,
                 at=timezone.now() + timedelta(minutes=1))  # still slow after the action
    assert policies.verify_pending_actions(now=timezone.now()) == []  # not due yet
    results = policies.verify_pending_actions(now=timezone.now() + timedelta(minutes=6))
    assert results == [(action.pk, False)]
    action.refresh_from_db()
    assert action.state == "reverted" and action.verification["result"] == "not recovered"
    assert route.revisions.get(is_active=True).number == 1  # back where it was
    assert AuditEntry.objects.filter(project=route.project, event="page").exists()
    assert "policy.verification_failed" in events(route.project)


def test_verification_keeps_a_recovered_action(route, auto_reroute, insert_calls) -> None:  # type: ignore[no-untyped-def]
    tenant = route.project.tenant_id
    insert_calls(tenant, n=40, latency_ms=2000, at=timezone.now() - timedelta(minutes=2))
    (decision,) = policies.on_alert_fired(make_alert(route.project).pk)
    insert_calls(tenant, deployment="chat-default-v2", model="model-v2", n=20, latency_ms=300,
                 at=timezone.now() + timedelta(minutes=1))
    assert policies.verify_pending_actions(now=timezone.now() + timedelta(minutes=6)) == [(decision.action_id, True)]
    assert route.revisions.get(is_active=True).effective_weights() == {"chat-default-v2": 100.0}


def test_budget_reroutes_to_the_cheapest_deployment(route, insert_calls) -> None:  # type: ignore[no-untyped-def]
    tenant = route.project.tenant_id
    insert_calls(tenant, deployment="chat-default-v1", model="model-v1", n=10, cost=0.5)
    insert_calls(tenant, deployment="chat-default-v2", model="model-v2", n=10, cost=0.01)
    Budget.objects.create(route=route, period="day", limit_usd=1, on_exceed="reroute_cheaper")
    assert policies.enforce_budgets() == ["rerouted chat-default to chat-default-v2"]
    assert route.revisions.get(is_active=True).effective_weights() == {"chat-default-v2": 100.0}
    assert policies.enforce_budgets() == []  # one response per period


@pytest.mark.urls("tests.routing.urls")
def test_operator_approves_a_proposed_action(route, insert_calls, operator_client, viewer_client) -> None:  # type: ignore[no-untyped-def]
    policy = Policy.objects.create(project=route.project, name="needs a human", action="reroute", mode="approve",
                                   reroute_to=route.deployments.get(gateway_id="chat-default-v2"), min_calls=1,
                                   min_duration_s=0)
    insert_calls(route.project.tenant_id, n=5)
    alert = make_alert(route.project)
    unrelated = make_alert(route.project)
    assert [d.outcome for d in policies.on_alert_fired(alert.pk)] == ["awaiting_approval"]
    url = f"/api/v1/policies/{policy.pk}/approve"
    assert viewer_client.post(url, {"alert_id": alert.pk}, format="json").status_code == 403
    refused = operator_client.post(url, {"alert_id": unrelated.pk}, format="json")
    assert refused.status_code == 400 and "has not proposed" in refused.json()["detail"]
    approved = operator_client.post(url, {"alert_id": alert.pk}, format="json")
    assert approved.status_code == 201, approved.json()
    assert approved.json()["alert_id"] == alert.pk and approved.json()["actor"].startswith("user:operator-")
    assert route.revisions.get(is_active=True).effective_weights() == {"chat-default-v2": 100.0}
    assert "policy.approved" in events(route.project)


def test_budget_spend_rate_projection() -> None:
    from datetime import datetime

    start = datetime(2026, 11, 1)
    assert policies._projected_spend(10.0, "month", start, start + timedelta(days=1)) is None  # too early to tell
    assert policies._projected_spend(10.0, "month", start, start + timedelta(days=15)) == pytest.approx(20.0)
    day = datetime(2026, 11, 22)
    assert policies._projected_spend(3.0, "day", day, day + timedelta(hours=6)) == pytest.approx(12.0)


def test_budget_alerts_when_configured_to(route, insert_calls) -> None:  # type: ignore[no-untyped-def]
    insert_calls(route.project.tenant_id, n=10, cost=0.5)
    Budget.objects.create(route=route, period="month", limit_usd=2, on_exceed="alert")
    assert policies.enforce_budgets() == ["alerted chat-default"]
    assert route.revisions.get(is_active=True).number == 1
    page = AuditEntry.objects.get(project=route.project, event="page")
    assert "over its month budget" in page.summary


def test_a_detector_alert_drives_the_policy_end_to_end(route, auto_reroute, insert_calls, monkeypatch,  # type: ignore[no-untyped-def]
                                                       django_capture_on_commit_callbacks) -> None:
    """The loop closed through the real write paths: alert service → (after commit) Celery task → policy → action;
    refreshing the same alert on the next sweep does not act or audit again."""
    from anomaly.alerts import Observation, observe
    from controlplane.routing import tasks

    # Run the queued task in this process (as a worker would) instead of leaving it on the in-memory broker.
    queued: list[int] = []
    monkeypatch.setattr(tasks.on_alert_fired, "delay", lambda alert_id: queued.append(alert_id))
    insert_calls(route.project.tenant_id, n=40, latency_ms=2000)
    now = timezone.now()
    obs = Observation(project=route.project, detector="latency_p95", series_key={"route": "chat-default"},
                      title="latency p95 on chat-default", score=9.0, episode_started_at=now - timedelta(minutes=5),
                      metric="latency_p95", method="seasonal_mad", window_start=now - timedelta(minutes=5),
                      window_end=now, observed=2000.0, expected=800.0, lower=600.0, upper=1000.0)
    with django_capture_on_commit_callbacks(execute=True):
        alert = observe(obs, now=now)
    assert alert is not None and queued == [alert.pk]
    tasks.on_alert_fired.apply(args=[queued.pop()])
    action = Action.objects.get(alert_id=alert.pk)
    assert action.automatic and action.state == "applied"
    assert route.revisions.get(is_active=True).effective_weights() == {"chat-default-v2": 100.0}
    with django_capture_on_commit_callbacks(execute=True):
        observe(obs, now=now + timedelta(minutes=1))
    assert queued == [alert.pk]  # re-evaluated on refresh …
    tasks.on_alert_fired.apply(args=[queued.pop()])
    assert Action.objects.filter(alert_id=alert.pk).count() == 1  # … but it acts once
    assert events(route.project) == ["policy.executed"]
