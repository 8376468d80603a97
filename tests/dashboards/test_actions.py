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
