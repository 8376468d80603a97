"""The gateway policy document: every route's active revision, with a project-wide monotonic version.

Pull-mode gateways (the LiteLLM plugin) fetch it from ``GET /api/v1/routing/policy`` with ``If-None-Match``;
push adapters send the same per-route section. The version only moves inside the activation transaction.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F

from controlplane.models import Project, Route, RoutingPolicyVersion

SCHEMA = "keel.routing.policy/v1"


def current_version(project_id: int) -> int:
    row = RoutingPolicyVersion.objects.filter(project_id=project_id).values_list("version", flat=True).first()
    return int(row or 0)


def bump_version(project: Project) -> int:
    """Increment inside the caller's transaction (the activation) and return the new version."""
    RoutingPolicyVersion.objects.get_or_create(project=project)
    RoutingPolicyVersion.objects.filter(project=project).update(version=F("version") + 1)
    return current_version(project.pk)


def etag_for(version: int) -> str:
    return f'"keel-policy-{version}"'


def route_section(route: Route) -> dict[str, Any] | None:
    revision = route.active_revision
    if revision is None:
        return None
    return {"route": route.name, "environment": route.environment, "route_version": route.version,
            "deployments": sorted(route.deployments.values_list("gateway_id", flat=True)), **revision.as_policy()}


def build(project: Project) -> dict[str, Any]:
    version = current_version(project.pk)
    routes = []
    for route in Route.objects.filter(project=project).prefetch_related("deployments").order_by("name", "environment"):
        section = route_section(route)
        if section is not None:
            routes.append(section)
    return {"schema": SCHEMA, "project": project.slug, "version": version, "routes": routes}
