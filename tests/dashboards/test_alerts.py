"""Alerts pages over the alert lifecycle service: list, feed fragment, evidence chart, role-checked actions."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(importlib.util.find_spec("anomaly.alerts") is None,
                       reason="anomaly.alerts (the alert lifecycle service) is not in this build"),
]


@pytest.fixture
def alert(traffic_project):  # type: ignore[no-untyped-def]
    from tests.browser.alerting import raise_alert_by_detector_run

    return raise_alert_by_detector_run(traffic_project)


def test_list_feed_and_detail_show_the_alert_with_its_evidence(client, traffic_project, member, alert) -> None:
    client.force_login(member("viewer"))
    listing = client.get("/alerts/", {"project": traffic_project.slug}).content.decode()
    assert f'data-alert-id="{alert.pk}"' in listing and alert.title in listing
    feed = client.get("/alerts/feed/", {"project": traffic_project.slug}).content.decode()
    assert f'data-alert-id="{alert.pk}"' in feed and "<html" not in feed
    detail = client.get(f"/alerts/{alert.pk}/", {"project": traffic_project.slug}).content.decode()
    evidence = json.loads(re.search(r'id="fig-evidence">(.*?)</script>', detail, re.S).group(1))
    names = [t["name"] for t in evidence["data"]]
    assert "observed" in names and "expected band" in names
    assert len(evidence["data"][names.index("observed")]["x"]) > 3
    assert 'id="ack-button"' not in detail  # a viewer gets no response forms


def test_viewer_cannot_acknowledge(client, traffic_project, member, alert) -> None:
    client.force_login(member("viewer"))
    assert client.post(f"/alerts/{alert.pk}/ack/?project={traffic_project.slug}").status_code == 403
    alert.refresh_from_db()
    assert alert.state == "firing"


def test_oncall_acknowledges_snoozes_assigns_and_resolves(client, traffic_project, member, alert) -> None:
    oncall = member("oncall")
    client.force_login(oncall)
    base = f"/alerts/{alert.pk}"
    qs = f"?project={traffic_project.slug}"
    assert client.post(f"{base}/ack/{qs}").status_code == 302
    alert.refresh_from_db()
    assert alert.state == "acknowledged"
    client.post(f"{base}/snooze/{qs}", {"minutes": "60"})
    client.post(f"{base}/assign/{qs}", {"assignee": oncall.username})
    alert.refresh_from_db()
    assert alert.snoozed_until is not None and alert.assignee == oncall
    # Acknowledging twice is refused by the service and reported, not a crash.
    again = client.post(f"{base}/ack/{qs}", follow=True).content.decode()
    assert "only a firing alert can be acknowledged" in again
    client.post(f"{base}/resolve/{qs}")
    alert.refresh_from_db()
    assert alert.state == "resolved"
    transitions = list(alert.transitions.values_list("action", flat=True))
    assert {"acknowledged", "snoozed", "assigned", "resolved"} <= set(transitions)


def test_operator_approves_a_policy_proposal(client, traffic_project, member, alert) -> None:
    from controlplane.models import Action, Policy
    from controlplane.routing import policies
    from tests.dashboards.conftest import make_route

    route = make_route(traffic_project, "support")
    policy = Policy.objects.create(project=traffic_project, name="roll back slow support", route=route,
                                   action="rollback", mode="approve", min_calls=0, min_severity="warning")
    policies.on_alert_fired(alert.pk)
    viewer = member("viewer")
    client.force_login(viewer)
    page = client.get(f"/alerts/{alert.pk}/", {"project": traffic_project.slug}).content.decode()
    assert "awaits an operator" in page and "data-approve" not in page
    assert client.post(f"/alerts/{alert.pk}/approve/{policy.pk}/?project={traffic_project.slug}").status_code == 403
    client.force_login(member("operator"))
    page = client.get(f"/alerts/{alert.pk}/", {"project": traffic_project.slug}).content.decode()
    assert f'data-approve="{policy.pk}"' in page
    client.post(f"/alerts/{alert.pk}/approve/{policy.pk}/?project={traffic_project.slug}")
    action = Action.objects.get(route=route, alert_id=alert.pk)
    assert action.kind == "rollback" and action.state == "applied"
    route.refresh_from_db()
    assert route.active_revision.number == 1
