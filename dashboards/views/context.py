"""What every page's template gets: the project switcher, the role, the filters and their dropdown values."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from controlplane.models import Role
from controlplane.tenancy import projects_for_user
from dashboards.access import access_of, filters_of
from dashboards.figures import Figure, to_json
from dashboards.filters import DIMENSION_LABELS, RANGES
from dashboards.queries import rollups
from dashboards.queries.scope import Scope

NAV = [
    ("overview", "Overview", "dashboards:overview"),
    ("cost", "Cost", "dashboards:cost"),
    ("latency", "Latency & reliability", "dashboards:latency"),
    ("versions", "Model versions", "dashboards:versions"),
    ("alerts", "Alerts", "dashboards:alerts"),
    ("routes", "Routes", "dashboards:routes"),
    ("traces", "Traces", "dashboards:traces"),
    ("coverage", "Coverage", "dashboards:coverage"),
    ("settings", "Settings", "dashboards:settings"),
]


def scope_of(request: HttpRequest) -> Scope:
    return Scope(access_of(request).project.tenant_id, filters_of(request))


def page(request: HttpRequest, template: str, active: str, figures: dict[str, Figure] | None = None,
         *, status: int = 200, show_filters: bool = True, **context: Any) -> HttpResponse:
    access = access_of(request)
    filters = filters_of(request)
    dimension_values = rollups.dimension_values(scope_of(request)) if show_filters else {}
    ctx = {
        "access": access,
        "project": access.project,
        "projects": projects_for_user(request.user),
        "filters": filters,
        "ranges": list(RANGES),
        "dimensions": [(name, label, dimension_values.get(name, []), filters.get(name))
                       for name, label in DIMENSION_LABELS.items()],
        "nav": NAV,
        "active": active,
        "show_filters": show_filters,
        "can_ack": access.allows(Role.ONCALL),
        "can_operate": access.allows(Role.OPERATOR),
        "can_admin": access.allows(Role.ADMIN),
        "figures": {name: to_json(fig) for name, fig in (figures or {}).items()},
        "qs": filters.query_string(),
        **context,
    }
    return render(request, template, ctx, status=status)
