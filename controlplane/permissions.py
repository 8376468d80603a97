"""DRF permission that resolves the caller's project once and checks the role the HTTP method needs."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from controlplane.models import Role
from controlplane.tenancy import NoProjectAccess, ProjectAccess, access_for_request

SAFE = {"GET", "HEAD", "OPTIONS"}


def project_access(request: Any, slug: str | None = None) -> ProjectAccess:
    """The request's ProjectAccess, resolved once and cached on the request."""
    cached = getattr(request, "_keel_access", None)
    if cached is None:
        cached = access_for_request(request, slug)
        request._keel_access = cached
    return cached


class HasProjectRole(BasePermission):
    """Views declare ``read_role`` (default viewer) and ``write_role`` (default admin)."""

    message = "Your role in this project does not allow this."

    def has_permission(self, request: Any, view: Any) -> bool:
        try:
            access = project_access(request, view.kwargs.get("project_slug"))
        except NoProjectAccess as exc:
            self.message = str(exc)
            return False
        needed = getattr(view, "read_role", Role.VIEWER) if request.method in SAFE else getattr(
            view, "write_role", Role.ADMIN)
        return access.allows(Role(needed))
