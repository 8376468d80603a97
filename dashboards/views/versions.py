"""Model versions per route: traffic share over time with deploy / alert / action markers, and a comparison."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

from controlplane.models import Project, Role
from dashboards import figures, sources
from dashboards.access import access_of, filters_of, require_role
from dashboards.queries import rollups
from dashboards.queries.scope import P95, Scope
from dashboards.views.context import page, scope_of


def _markers(project: Project, route: str, start: datetime, end: datetime,
             first_seen: dict[str, datetime]) -> list[tuple[datetime, str, str]]:
    out: list[tuple[datetime, str, str]] = [(t, f"first seen {k}", "deploy") for k, t in first_seen.items()]
    Alert = sources.alert_model()
    if Alert is not None:
        for alert in Alert.objects.filter(project=project, route=route, opened_at__gte=start, opened_at__lt=end)[:20]:
            out.append((alert.opened_at, f"alert: {alert.title[:40]}", "alert"))
    routing = sources.routing_models()
    if routing is not None:
        actions = routing.Action.objects.filter(project=project, route__name=route, created_at__gte=start,
                                                created_at__lt=end).order_by("created_at")[:20]
        for action in actions:
            out.append((action.applied_at or action.created_at, f"{action.kind} by {action.actor}", "action"))
    return sorted(out)


def _drift_results(project: Project, route: str) -> list[Any]:
    module = sources.optional_module("anomaly.models")
    Detection = getattr(module, "Detection", None) if module else None
    if Detection is None:
        return []
    return list(Detection.objects.filter(project=project, detector__in=["drift", "canary"], series_key__route=route)
                .order_by("-created_at")[:10])


@require_role(Role.VIEWER)
def versions(request: HttpRequest) -> HttpResponse:
    filters = filters_of(request)
    project = access_of(request).project
    base = scope_of(request)
    routes = [r.key for r in rollups.breakdown(base, "route", limit=50, order="calls", latency=False)]
    route = filters.get("route") or (routes[0] if routes else "")
    scope = Scope(base.tenant_id, filters.with_values(route=route)) if route else base
    # Every version of the route, whatever the model filter says: the comparison needs them all.
    route_scope = Scope(base.tenant_id, replace(scope.filters, values={**scope.filters.values, "model": ""}))
    points = rollups.series(route_scope, "model", ttft=False) if route else []
    first_seen: dict[str, datetime] = {}
    for p in points:
        if p.calls and p.key not in first_seen:
            first_seen[p.key] = p.bucket
    # A version already serving at the window start was not deployed inside it.
    earliest = min(first_seen.values(), default=None)
    first_seen = {k: t for k, t in first_seen.items() if t != earliest}
    # A route name from ClickHouse may hold NUL, which PostgreSQL refuses in a query (DataError): no markers then.
    in_db = bool(route) and "\x00" not in route
    markers = _markers(project, route, filters.start, filters.end, first_seen) if in_db else []
    figs: dict[str, figures.Figure] = {}
    version_rows = rollups.breakdown(route_scope, "model", limit=20, order="calls") if route else []
    if route:
        figs["share"] = figures.share(points, f"Traffic share by model version · {route}", markers)
        figs["p95"] = figures.timeseries(points, lambda p: p.latency[P95], "Latency p95 by version", y_title="ms")
        figs["errors"] = figures.timeseries(points, lambda p: p.errors / p.calls if p.calls else None,
                                            "Error rate by version", y_title="share")
        figs["errors"]["layout"]["yaxis"]["tickformat"] = ".1%"
    names = [v.key for v in version_rows]
    a = request.GET.get("a") or (names[0] if names else "")
    b = request.GET.get("b") or (names[1] if len(names) > 1 else "")
    by_name = {v.key: v for v in version_rows}
    comparison = [(name, by_name[name]) for name in (a, b) if name in by_name]
    return page(request, "dashboards/versions.html", "versions", figs, routes=routes, route=route,
                versions=version_rows, a=a, b=b, comparison=comparison, markers=markers,
                drift=_drift_results(project, route) if in_db else [])
