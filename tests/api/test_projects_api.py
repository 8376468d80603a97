"""Project settings, API keys and members over the API: roles, scopes, tenancy and errors."""

from __future__ import annotations

import pytest

from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from controlplane.apikeys import issue_key, verify_key
from controlplane.models import Membership, Project, Role


def _client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def two_projects(db: None) -> tuple[Project, Project]:
    return Project.objects.create(slug="alpha", name="Alpha"), Project.objects.create(slug="beta", name="Beta")


def test_admin_key_issues_lists_and_revokes_keys(two_projects: tuple[Project, Project]) -> None:
    alpha, beta = two_projects
    admin = _client(issue_key(alpha, ["admin"]).secret)
    created = admin.post("/api/v1/keys", {"name": "ci", "scopes": ["ingest"]}, format="json")
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("keel_") and verify_key(secret) is not None
    listed = admin.get("/api/v1/keys").json()
    assert "secret" not in listed[0] and {k["name"] for k in listed} == {"ci", ""}
    assert admin.post(f"/api/v1/keys/{created.json()['id']}/revoke").json()["active"] is False
    assert verify_key(secret) is None
    # A key of project beta is invisible to alpha's admin.
    other = issue_key(beta, ["ingest"]).api_key
    assert admin.post(f"/api/v1/keys/{other.pk}/revoke").status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


@pytest.mark.parametrize(("scopes", "status"), [(["read"], 403), (["ingest"], 403)])
def test_non_admin_keys_cannot_manage_keys(two_projects: tuple[Project, Project], scopes: list[str],
                                           status: int) -> None:
    client = _client(issue_key(two_projects[0], scopes).secret)
    response = client.post("/api/v1/keys", {"scopes": ["admin"]}, format="json")
    assert response.status_code == status
    assert "detail" in response.json()


def test_errors_are_detail_objects_with_field_names(two_projects: tuple[Project, Project]) -> None:
    admin = _client(issue_key(two_projects[0], ["admin"]).secret)
    response = admin.post("/api/v1/keys", {"scopes": ["root"]}, format="json")
    assert response.status_code == 400
    assert "scopes" in response.json()["detail"]
    assert APIClient().get("/api/v1/project").status_code in (401, 403)
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer keel_nope_nope")
    assert bad.get("/api/v1/project").json() == {"detail": "Invalid or revoked API key."}


def test_project_settings_read_by_viewer_changed_by_admin(two_projects: tuple[Project, Project]) -> None:
    alpha, _ = two_projects
    reader = _client(issue_key(alpha, ["read"]).secret)
    assert reader.get("/api/v1/project").json()["slug"] == "alpha"
    assert reader.patch("/api/v1/project", {"content_capture": "full"}, format="json").status_code == 403
    admin = _client(issue_key(alpha, ["admin"]).secret)
    changed = admin.patch("/api/v1/project", {"content_capture": "none", "pii_extra_patterns": ["ORD-\\d+"]},
                          format="json")
    assert changed.status_code == 200 and changed.json()["content_capture"] == "none"
    invalid = admin.patch("/api/v1/project", {"pii_extra_patterns": ["(unclosed"]}, format="json")
    assert invalid.status_code == 400 and "pii_extra_patterns" in invalid.json()["detail"]
    alpha.refresh_from_db()
    assert alpha.pii_extra_patterns == ["ORD-\\d+"]


def test_members_and_roles_for_session_users(two_projects: tuple[Project, Project]) -> None:
    alpha, beta = two_projects
    users = get_user_model().objects
    boss = users.create_user("boss", password="pw-boss-123")
    carol = users.create_user("carol", password="pw-carol-123")
    Membership.objects.create(user=boss, project=alpha, role=Role.ADMIN)
    Membership.objects.create(user=carol, project=beta, role=Role.VIEWER)
    client = APIClient()
    client.force_authenticate(boss)
    added = client.post("/api/v1/members?project=alpha", {"username": "carol", "role": "oncall"}, format="json")
    assert added.status_code == 201
    member_id = added.json()["id"]
    assert client.patch(f"/api/v1/members/{member_id}?project=alpha", {"role": "operator"},
                        format="json").json()["role"] == "operator"
    # The last admin cannot demote themselves.
    own = Membership.objects.get(user=boss, project=alpha)
    demote = client.patch(f"/api/v1/members/{own.pk}?project=alpha", {"role": "viewer"}, format="json")
    assert demote.status_code == 400
    # boss has no membership in beta: no data, whatever the URL says.
    assert client.get("/api/v1/members?project=beta").status_code == 403
    carol_client = APIClient()
    carol_client.force_authenticate(carol)
    assert carol_client.post("/api/v1/members?project=beta", {"username": "boss", "role": "admin"},
                             format="json").status_code == 403


def test_openapi_schema_and_local_docs(client) -> None:  # type: ignore[no-untyped-def]
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/keys" in schema.json()["paths"]
    docs = client.get("/api/docs/").content.decode()
    assert "cdn" not in docs.lower() and "/static/drf_spectacular_sidecar/" in docs
