"""Forms: rollback/reroute through the routing services, role checks on every POST, CSRF, login throttling."""

from __future__ import annotations

import re

import pytest

from django.test import Client

from controlplane.models import AuditEntry
from controlplane.models.routing import RoutingPolicyVersion

pytestmark = pytest.mark.django_db


def policy_version(project) -> int:  # type: ignore[no-untyped-def]
    return RoutingPolicyVersion.objects.get(project=project).version


def test_operator_rolls_back_from_the_route_page(client, traffic_project, member, route) -> None:
    client.force_login(member("operator"))
    page = client.get(f"/routes/{route.pk}/", {"project": traffic_project.slug}).content.decode()
    assert 'id="rollback-button"' in page and "Rollback to r1" in page
    assert "Cost per call" in page  # the confirm dialog carries the impact preview
    before = policy_version(traffic_project)
    response = client.post(f"/routes/{route.pk}/rollback/?project={traffic_project.slug}",
                           {"expected_version": route.version, "to_revision": "1", "reason": "latency"})
    assert response.status_code == 302
    route.refresh_from_db()
    assert route.active_revision.number == 1
    assert policy_version(traffic_project) == before + 1
    entry = AuditEntry.objects.filter(project=traffic_project, event="action.applied").order_by("-at").first()
    assert entry is not None and entry.actor == "user:operator-user" and "rollback" in entry.summary
    after = client.get(f"/routes/{route.pk}/", {"project": traffic_project.slug}).content.decode()
    assert 'data-audit-event="action.applied"' in after


def test_stale_rollback_is_refused_with_a_message(client, traffic_project, member, route) -> None:
    client.force_login(member("operator"))
    response = client.post(f"/routes/{route.pk}/rollback/?project={traffic_project.slug}",
                           {"expected_version": route.version - 1}, follow=True)
    assert "The route changed while you were looking at it" in response.content.decode()
    route.refresh_from_db()
    assert route.active_revision.number == 2


def test_viewer_sees_no_rollback_button_and_a_forged_post_is_403(client, traffic_project, member, route) -> None:
    client.force_login(member("viewer"))
    page = client.get(f"/routes/{route.pk}/", {"project": traffic_project.slug}).content.decode()
    assert "rollback-button" not in page and "Confirm rollback" not in page
    before = policy_version(traffic_project)
    response = client.post(f"/routes/{route.pk}/rollback/?project={traffic_project.slug}", {"to_revision": "1"})
    assert response.status_code == 403
    assert client.post(f"/routes/{route.pk}/reroute/?project={traffic_project.slug}",
                       {"deployment": "small-1"}).status_code == 403
    route.refresh_from_db()
    assert route.active_revision.number == 2 and policy_version(traffic_project) == before


def test_oncall_cannot_reroute(client, traffic_project, member, route) -> None:
    client.force_login(member("oncall"))
    assert client.post(f"/routes/{route.pk}/reroute/?project={traffic_project.slug}",
                       {"deployment": "small-1"}).status_code == 403


def test_posts_need_a_csrf_token(traffic_project, member, route) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member("operator"))
    assert strict.post(f"/routes/{route.pk}/rollback/?project={traffic_project.slug}").status_code == 403
    route.refresh_from_db()
    assert route.active_revision.number == 2


def test_a_route_of_another_project_is_not_found(client, traffic_project, member, route) -> None:
    from controlplane.models import Membership, Project

    other = Project.objects.create(slug="elsewhere", name="Elsewhere")
    user = member("operator")
    Membership.objects.create(user=user, project=other, role="admin")
    client.force_login(user)
    assert client.get(f"/routes/{route.pk}/", {"project": other.slug}).status_code == 404
    assert client.post(f"/routes/{route.pk}/rollback/?project={other.slug}").status_code == 404


def test_admin_issues_a_key_shown_once_and_revokes_it(client, traffic_project, member) -> None:
    from controlplane.apikeys import verify_key
    from controlplane.models import ApiKey

    client.force_login(member("admin"))
    page = client.post(f"/settings/keys/?project={traffic_project.slug}", {"name": "ci", "scopes": ["ingest"]})
    secret = re.search(r'id="new-secret">(keel_[\w-]+)<', page.content.decode()).group(1)
    assert verify_key(secret) is not None
    assert secret not in client.get("/settings/", {"project": traffic_project.slug}).content.decode()
    key = ApiKey.objects.get(project=traffic_project, name="ci")
    client.post(f"/settings/keys/{key.pk}/revoke/?project={traffic_project.slug}")
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_admin_changes_a_members_role(client, traffic_project, member) -> None:
    from controlplane.models import Membership

    viewer = member("viewer")
    client.force_login(member("admin"))
    client.post(f"/settings/members/?project={traffic_project.slug}", {"username": viewer.username, "role": "oncall"})
    assert Membership.objects.get(user=viewer, project=traffic_project).role == "oncall"


def test_login_is_throttled_per_username_and_ip(client, django_user_model) -> None:
    from django.core.cache import cache

    cache.clear()
    django_user_model.objects.create_user("alice", password="right-password-1")
    for _ in range(5):
        assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    blocked = client.post("/login/", {"username": "alice", "password": "right-password-1"})
    assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.content.decode()
    # Another username from the same address is not locked out.
    django_user_model.objects.create_user("bob", password="right-password-2")
    assert client.post("/login/", {"username": "bob", "password": "right-password-2"}).status_code == 302
    cache.clear()


def test_operator_reroutes_with_custom_weights_after_a_preview(client, traffic_project, member, route) -> None:
    client.force_login(member("operator"))
    page = client.get(f"/routes/{route.pk}/", {"project": traffic_project.slug}).content.decode()
    assert 'id="custom-reroute-button"' in page and 'name="weight:small-1"' in page
    assert 'name="weight:large-1"' in page and 'value="100"' in page  # prefilled with the active weights
    form = {"weight:small-1": "10", "weight:large-1": "90", "expected_version": route.version, "reason": "canary"}
    preview = client.post(f"/routes/{route.pk}/reroute/preview/?project={traffic_project.slug}", form)
    assert preview.status_code == 200
    html = preview.content.decode()
    assert 'data-preview-state="valid"' in html and "large-1 90%, small-1 10%" in html and "Cost per call" in html
    before = policy_version(traffic_project)
    response = client.post(f"/routes/{route.pk}/reroute/?project={traffic_project.slug}", form, follow=True)
    assert "Reroute applied: r2 → r3." in response.content.decode()
    route.refresh_from_db()
    active = route.active_revision
    assert active.number == 3 and active.effective_weights() == {"small-1": 10.0, "large-1": 90.0}
    assert policy_version(traffic_project) == before + 1
    entry = AuditEntry.objects.filter(project=traffic_project, event="action.applied").order_by("-at").first()
    assert entry is not None and entry.actor == "user:operator-user" and entry.data["after"] == 3
    assert entry.data["params"]["weights"] == {"small-1": 10.0, "large-1": 90.0}


@pytest.mark.parametrize(("weights", "message"), [
    ({"weight:small-1": "60", "weight:large-1": "60"}, "Weights must sum to 100 (percent); they sum to 120."),
    ({"weight:small-1": "0", "weight:large-1": "110"}, "Weight for large-1 is 110.0; weights are percentages"),
    ({"weight:small-1": "abc", "weight:large-1": "100"}, "Weight for small-1 must be a number, got &#x27;abc&#x27;."),
    ({"weight:small-1": "", "weight:large-1": "0"}, "Weights must sum to 100 (percent); they sum to 0."),
    ({"weight:nope": "100"}, "Unknown deployment id(s) for route chat@prod: nope"),
])
def test_invalid_custom_weights_are_refused_inline_and_change_nothing(client, traffic_project, member, route,
                                                                      weights, message) -> None:  # type: ignore[no-untyped-def]
    client.force_login(member("operator"))
    preview = client.post(f"/routes/{route.pk}/reroute/preview/?project={traffic_project.slug}", weights)
    assert preview.status_code == 422
    assert 'data-preview-state="invalid"' in preview.content.decode() and message in preview.content.decode()
    response = client.post(f"/routes/{route.pk}/reroute/?project={traffic_project.slug}",
                           {**weights, "expected_version": route.version}, follow=True)
    assert message in response.content.decode()
    route.refresh_from_db()
    assert route.active_revision.number == 2


def test_negative_weight_is_refused(client, traffic_project, member, route) -> None:
    client.force_login(member("operator"))
    preview = client.post(f"/routes/{route.pk}/reroute/preview/?project={traffic_project.slug}",
                          {"weight:small-1": "-10", "weight:large-1": "100"})
    assert preview.status_code == 422 and "must be a number between 0 and 100" in preview.content.decode()


def test_viewer_gets_no_weights_form_and_forged_custom_reroutes_are_403(client, traffic_project, member,
                                                                        route) -> None:  # type: ignore[no-untyped-def]
    client.force_login(member("viewer"))
    page = client.get(f"/routes/{route.pk}/", {"project": traffic_project.slug}).content.decode()
    assert "custom-reroute-button" not in page and "weight:small-1" not in page
    forged = {"weight:small-1": "50", "weight:large-1": "50", "expected_version": route.version}
    assert client.post(f"/routes/{route.pk}/reroute/?project={traffic_project.slug}", forged).status_code == 403
    assert client.post(f"/routes/{route.pk}/reroute/preview/?project={traffic_project.slug}",
                       forged).status_code == 403
    route.refresh_from_db()
    assert route.active_revision.number == 2
