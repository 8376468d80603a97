"""Role checks for every page and form: the project and role come from ``controlplane.tenancy`` only."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render

from controlplane.models import Role
from controlplane.tenancy import NoProjectAccess, ProjectAccess, access_for_request
from dashboards.filters import Filters, TimeRangeError, filters_from_request
from ingestion.clickhouse.client import ClickHouseUnavailable

View = Callable[..., HttpResponse]


def require_role(role: Role) -> Callable[[View], View]:
    """Resolve ``request.access`` (project + role) and ``request.filters``; 403 below ``role``.

    A project the user is not a member of is a 403 as well, never an empty page with someone else's name on it.
    Read-only pages answer GET/HEAD only; forms use the same decorator with the role the action needs.
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            slug = request.POST.get("project") if request.method == "POST" else None
            try:
                access = access_for_request(request, slug or None)
            except NoProjectAccess as exc:
                raise PermissionDenied(str(exc)) from None
            if not access.allows(role):
                raise PermissionDenied(f"This needs the {Role(role).label} role; you are {access.role.label}.")
            request.access = access  # type: ignore[attr-defined]
            try:
                request.filters = filters_from_request(request)  # type: ignore[attr-defined]
            except TimeRangeError as exc:
                return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
            try:
                return view(request, *args, **kwargs)
            except ClickHouseUnavailable as exc:
                return render(request, "dashboards/unavailable.html", {"detail": str(exc)}, status=503)

        return wrapped

    return decorate


def access_of(request: HttpRequest) -> ProjectAccess:
    return request.access  # type: ignore[attr-defined]


def filters_of(request: HttpRequest) -> Filters:
    return request.filters  # type: ignore[attr-defined]
