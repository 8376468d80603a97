"""The one place that decides which project a request may see and what it may do there.

API keys are bound to one project; session users choose a project (``?project=<slug>``, the URL, or their
first membership) and act with the role of their membership. Views, API endpoints, WebSocket consumers and
ClickHouse selectors all resolve the project here, so no caller filters by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controlplane.apikeys import VerifiedKey
from controlplane.models import Membership, Project, Role, Scope
from controlplane.models.projects import ROLE_RANK


class NoProjectAccess(Exception):
    """The caller has no access to the requested project (reported as 403/404, never as data)."""


@dataclass(frozen=True)
class ProjectAccess:
    project: Project
    role: Role

    def allows(self, needed: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[needed]


def _role_for_scopes(scopes: frozenset[str]) -> Role:
    # An admin-scoped key can do what an admin member can; a read key is a viewer.
    if Scope.ADMIN in scopes:
        return Role.ADMIN
    return Role.VIEWER


def access_for_key(key: VerifiedKey) -> ProjectAccess:
    if not (key.allows(Scope.READ) or key.allows(Scope.ADMIN)):
        raise NoProjectAccess("This API key has no read scope.")
    return ProjectAccess(Project.objects.get(pk=key.project_id), _role_for_scopes(key.scopes))


def access_for_user(user: Any, slug: str | None) -> ProjectAccess:
    if not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        raise NoProjectAccess("Not signed in.")
    if slug and "\x00" in slug:  # no slug holds NUL, and PostgreSQL refuses it in a query (DataError → 500)
        raise NoProjectAccess("You are not a member of this project.")
    memberships = Membership.objects.select_related("project").filter(user=user)
    if slug:
        memberships = memberships.filter(project__slug=slug)
    membership = memberships.order_by("project__slug").first()
    if membership is None:
        if user.is_superuser:
            project = Project.objects.filter(slug=slug).first() if slug else Project.objects.order_by("slug").first()
            if project is not None:
                return ProjectAccess(project, Role.ADMIN)
        raise NoProjectAccess("You are not a member of this project.")
    return ProjectAccess(membership.project, Role(membership.role))


def access_for_request(request: Any, slug: str | None = None) -> ProjectAccess:
    """Resolve the project for a Django or DRF request; raises NoProjectAccess."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, VerifiedKey):
        if slug and slug != Project.objects.filter(pk=auth.project_id).values_list("slug", flat=True).first():
            raise NoProjectAccess("This API key belongs to another project.")
        return access_for_key(auth)
    wanted = slug or request.GET.get("project") or None
    return access_for_user(request.user, wanted)


def projects_for_user(user: Any) -> list[Project]:
    if getattr(user, "is_superuser", False):
        return list(Project.objects.order_by("slug"))
    return [m.project for m in Membership.objects.select_related("project").filter(user=user).order_by("project__slug")]
