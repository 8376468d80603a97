"""The alerts API: filters and cursor pagination, lifecycle actions with role checks, settings, channels, silences."""

from __future__ import annotations

import datetime as dt

import pytest

from rest_framework.test import APIClient

from anomaly import alerts
from anomaly.models import Alert, AlertState, NotificationChannel, Silence
from controlplane.apikeys import issue_key
from controlplane.models import Membership, Project, Role
from tests.alerts.helpers import T0, observation

pytestmark = pytest.mark.django_db


def _client(project, django_user_model, role: str, name: str | None = None):  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_user(name or f"{role}-user")
    Membership.objects.create(user=user, project=project, role=role)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def viewer(project, django_user_model):  # type: ignore[no-untyped-def]
    return _client(project, django_user_model, Role.VIEWER)


@pytest.fixture
def oncall(project, django_user_model):  # type: ignore[no-untyped-def]
    return _client(project, django_user_model, Role.ONCALL)


@pytest.fixture
def admin(project, django_user_model):  # type: ignore[no-untyped-def]
    return _client(project, django_user_model, Role.ADMIN)


DETECTORS = ["latency_p95", "error_rate", "volume", "cost_per_call", "tokens_per_call", "ttft_p95", "latency_p99"]


@pytest.fixture
def some_alerts(project):  # type: ignore[no-untyped-def]
    made = []
    for i in range(7):
        obs = observation(project, route=f"r{i % 3}", detector=DETECTORS[i],
                          score=4.0 if i == 0 else 1.5, started=T0 + dt.timedelta(hours=i))
        made.append(alerts.observe(obs, now=T0 + dt.timedelta(hours=i)))
    return made


def test_list_filters_and_cursor_pagination(viewer, some_alerts) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    url = "/api/v1/alerts?limit=3"
    while url:
        page = viewer.get(url)
        assert page.status_code == 200, page.content
        seen += [a["id"] for a in page.json()["results"]]
        url = page.json()["next"]
    assert seen == [a.pk for a in reversed(some_alerts)]
    body = viewer.get("/api/v1/alerts", {"route": "r1"}).json()
    assert {a["route"] for a in body["results"]} == {"r1"} and len(body["results"]) == 2
    assert [a["severity"] for a in viewer.get("/api/v1/alerts", {"severity": "critical"}).json()["results"]] == [
        "critical"]
    latency = viewer.get("/api/v1/alerts", {"detector": "latency_p95,latency_p99", "state": "firing"}).json()
    assert sorted(a["detector"] for a in latency["results"]) == ["latency_p95", "latency_p99"]
    bad = viewer.get("/api/v1/alerts", {"state": "exploded"})
    assert bad.status_code == 400 and "state" in bad.json()["detail"]


def test_detail_carries_evidence_and_history(viewer, some_alerts) -> None:  # type: ignore[no-untyped-def]
    body = viewer.get(f"/api/v1/alerts/{some_alerts[0].pk}").json()
    [detection] = body["detections"]
    assert (detection["observed"], detection["expected"], detection["lower"], detection["upper"]) == (
        2400.0, 850.0, 700.0, 1000.0)
    assert detection["points"] and body["transitions"][0]["action"] == "opened"
    assert body["actions"] == [] and body["notifications"] == []
    assert viewer.get("/api/v1/alerts/999999").status_code == 404


def test_viewer_cannot_act_oncall_can(viewer, oncall, some_alerts) -> None:  # type: ignore[no-untyped-def]
    alert = some_alerts[0]
    denied = viewer.post(f"/api/v1/alerts/{alert.pk}/ack", {"reason": "x"}, format="json")
    assert denied.status_code == 403 and "detail" in denied.json()
    ok = oncall.post(f"/api/v1/alerts/{alert.pk}/ack", {"reason": "mine"}, format="json")
    assert ok.status_code == 200 and ok.json()["state"] == "acknowledged"
    again = oncall.post(f"/api/v1/alerts/{alert.pk}/ack", {}, format="json")
    assert again.status_code == 409 and "firing" in again.json()["detail"]
    snooze = oncall.post(f"/api/v1/alerts/{alert.pk}/snooze", {"minutes": 30, "reason": "deploy"}, format="json")
    assert snooze.status_code == 200 and snooze.json()["snoozed_until"]
    assert oncall.post(f"/api/v1/alerts/{alert.pk}/snooze", {"reason": "?"}, format="json").status_code == 400
    assign = oncall.post(f"/api/v1/alerts/{alert.pk}/assign", {"assignee": "viewer-user"}, format="json")
    assert assign.status_code == 200 and assign.json()["assignee"] == "viewer-user"
    stranger = oncall.post(f"/api/v1/alerts/{alert.pk}/assign", {"assignee": "nobody"}, format="json")
    assert stranger.status_code == 400 and "member" in str(stranger.json()["detail"])
    done = oncall.post(f"/api/v1/alerts/{alert.pk}/resolve", {"reason": "fixed"}, format="json")
    assert done.status_code == 200 and done.json()["state"] == "resolved"
    history = list(Alert.objects.get(pk=alert.pk).transitions.values_list("action", "actor__username", "reason"))
    assert history[1:] == [("acknowledged", "oncall-user", "mine"), ("snoozed", "oncall-user", "deploy"),
                           ("assigned", "oncall-user", "assigned to viewer-user"),
                           ("resolved", "oncall-user", "manual: fixed")]


def test_other_projects_alerts_are_invisible(project, oncall, some_alerts) -> None:  # type: ignore[no-untyped-def]
    other = Project.objects.create(slug="other-project", name="Other")
    foreign = alerts.observe(observation(other), now=T0)
    assert oncall.get(f"/api/v1/alerts/{foreign.pk}").status_code == 404
    assert oncall.post(f"/api/v1/alerts/{foreign.pk}/resolve", {}, format="json").status_code == 404
    assert foreign.pk not in [a["id"] for a in oncall.get("/api/v1/alerts?limit=100").json()["results"]]
    assert Alert.objects.get(pk=foreign.pk).state == AlertState.FIRING


def test_api_keys_read_with_read_scope_and_act_with_admin_scope(project, some_alerts) -> None:  # type: ignore[no-untyped-def]
    client = APIClient()
    read = issue_key(project, ["read"]).secret
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {read}")
    assert client.get("/api/v1/alerts").status_code == 200
    assert client.post(f"/api/v1/alerts/{some_alerts[1].pk}/ack", {}, format="json").status_code == 403
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(project, ['admin']).secret}")
    assert client.post(f"/api/v1/alerts/{some_alerts[1].pk}/ack", {}, format="json").status_code == 200


def test_detector_settings_admin_only(viewer, admin) -> None:  # type: ignore[no-untyped-def]
    listed = viewer.get("/api/v1/detectors").json()
    assert {d["kind"] for d in listed} >= {"latency_p95", "error_rate", "volume", "drift", "canary"}
    assert viewer.patch("/api/v1/detectors/latency_p95", {"sensitivity": 0.9}, format="json").status_code == 403
    changed = admin.patch("/api/v1/detectors/latency_p95", {"sensitivity": 0.9, "min_calls": 50}, format="json")
    assert changed.status_code == 200 and (changed.json()["sensitivity"], changed.json()["min_calls"]) == (0.9, 50)
    assert admin.patch("/api/v1/detectors/latency_p95", {"sensitivity": 3}, format="json").status_code == 400
    assert admin.patch("/api/v1/detectors/nonsense", {"enabled": False}, format="json").status_code == 400


def test_channels_crud_is_admin_only_and_hides_secrets(project, oncall, admin) -> None:  # type: ignore[no-untyped-def]
    payload = {"name": "ops hook", "kind": "webhook", "config": {"url": "https://hooks.example/keel",
                                                                 "secret": "topsecret1234"}}
    assert oncall.post("/api/v1/notification-channels", payload, format="json").status_code == 403
    assert oncall.get("/api/v1/notification-channels").status_code == 403
    created = admin.post("/api/v1/notification-channels", payload, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["config"]["secret"] == "••••1234"
    channel = NotificationChannel.objects.get(pk=created.json()["id"])
    assert channel.project == project and channel.config["secret"] == "topsecret1234"
    bad = admin.post("/api/v1/notification-channels", {"name": "pd", "kind": "pagerduty", "config": {}}, format="json")
    assert bad.status_code == 400 and "routing_key" in str(bad.json()["detail"])
    bad_url = {"name": "x", "kind": "slack", "config": {"url": "file:///etc/passwd"}}
    assert admin.post("/api/v1/notification-channels", bad_url, format="json").status_code == 400
    assert admin.patch(f"/api/v1/notification-channels/{channel.pk}", {"enabled": False}, format="json").json()[
        "enabled"] is False
    assert admin.delete(f"/api/v1/notification-channels/{channel.pk}").status_code == 204


def test_silences_crud_for_oncall(project, viewer, oncall) -> None:  # type: ignore[no-untyped-def]
    body = {"route": "support", "starts_at": "2026-11-20T12:00:00Z", "ends_at": "2026-11-20T14:00:00Z",
            "is_maintenance": True, "comment": "provider migration"}
    assert viewer.post("/api/v1/silences", body, format="json").status_code == 403
    created = oncall.post("/api/v1/silences", body, format="json")
    assert created.status_code == 201, created.content
    silence = Silence.objects.get(pk=created.json()["id"])
    assert silence.project == project and silence.created_by.username == "oncall-user"
    assert [s["id"] for s in viewer.get("/api/v1/silences").json()] == [silence.pk]
    backwards = {**body, "ends_at": "2026-11-20T11:00:00Z"}
    assert oncall.post("/api/v1/silences", backwards, format="json").status_code == 400
    assert oncall.delete(f"/api/v1/silences/{silence.pk}").status_code == 204


def test_schema_documents_the_alert_endpoints(admin) -> None:  # type: ignore[no-untyped-def]
    schema = admin.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/alerts", "/api/v1/alerts/{alert_id}/ack", "/api/v1/detectors/{kind}", "/api/v1/silences"} <= set(
        paths)
