"""Routes: active revision and history, Rollback / Reroute (confirm dialog with the impact preview), policies,
gateway sync status. Actions go through ``controlplane.routing.services`` (persist, audit, push, publish)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from controlplane.models import Role
from dashboards import sources
from dashboards.access import access_of, require_role
from dashboards.views.context import page


def _routing() -> Any:
    routing = sources.routing_models()
    if routing is None or not hasattr(routing, "Route"):
        raise Http404("Routing is not installed in this build.")
    return routing


def _route_or_404(request: HttpRequest, route_id: int) -> Any:
    route = _routing().Route.objects.filter(project=access_of(request).project, pk=route_id) \
        .select_related("project").first()
    if route is None:
        raise Http404("No such route in this project.")
    return route


def _policy_version(project: Any) -> int:
    routing = _routing()
    row = routing.RoutingPolicyVersion.objects.filter(project=project).first()
    return row.version if row else 0


@require_role(Role.VIEWER)
def route_list(request: HttpRequest) -> HttpResponse:
    routing = sources.routing_models()
    project = access_of(request).project
    if routing is None:
        return page(request, "dashboards/routes.html", "routes", {}, show_filters=False, routes=None)
    routes = list(routing.Route.objects.filter(project=project).prefetch_related("deployments", "revisions"))
    rows = [{"route": r, "active": next((rev for rev in r.revisions.all() if rev.is_active), None)} for r in routes]
    adapters = list(routing.GatewayAdapter.objects.filter(project=project))
    syncs = {a.pk: a.syncs.order_by("-at").first() for a in adapters}
    return page(request, "dashboards/routes.html", "routes", {}, show_filters=False, routes=rows,
                adapters=[(a, syncs[a.pk]) for a in adapters], policy_version=_policy_version(project),
                policies=list(routing.Policy.objects.filter(project=project).select_related("route")))


@require_role(Role.VIEWER)
def route_detail(request: HttpRequest, route_id: int) -> HttpResponse:
    from controlplane.routing import audit, preview, services

    route = _route_or_404(request, route_id)
    current = route.active_revision
    previous = services._previous_revision(route, current)  # the revision a Rollback re-activates
    can_operate = access_of(request).allows(Role.OPERATOR)
    previews: dict[str, Any] = {}
    deployments = list(route.deployments.all())
    if can_operate:  # previews read ClickHouse; only people who can act need them
        try:
            if previous is not None:
                previews["rollback"] = preview.impact(route, current, previous)
            for d in deployments:
                previews[d.gateway_id] = preview.impact(route, current, weights={d.gateway_id: 100.0})
        except Exception as exc:  # advisory, like the service treats it
            previews["error"] = str(exc)
    routing = _routing()
    return page(request, "dashboards/route_detail.html", "routes", {}, show_filters=False, route=route,
                current=current, previous=previous, revisions=list(route.revisions.order_by("-number")[:20]),
                deployments=deployments, previews=previews,
                audit_entries=list(audit.entries(route.project).filter(route_id=route.pk)[:30]),
                policies=list(routing.Policy.objects.filter(project=route.project, route=route)),
                actions=list(routing.Action.objects.filter(route=route).order_by("-created_at")[:10]),
                policy_version=_policy_version(route.project))


def _act(request: HttpRequest, route_id: int, run: Any) -> HttpResponse:
    from controlplane.routing import services

    if not access_of(request).allows(Role.OPERATOR):
        raise PermissionDenied("Rollback and reroute need the Operator role.")
    route = _route_or_404(request, route_id)
    actor = services.Actor.for_request(request)
    reason = request.POST.get("reason", "").strip()[:500] or "from the dashboard"
    try:
        expected = int(request.POST["expected_version"]) if request.POST.get("expected_version") else None
    except ValueError:
        expected = None
    try:
        outcome = run(services, route, actor, reason, expected)
    except services.StaleVersion:
        messages.error(request, "The route changed while you were looking at it; review the new state and retry.")
    except services.PushFailed as exc:
        messages.error(request, f"The gateway did not accept the change: {exc}")
    except services.RoutingError as exc:
        messages.error(request, str(exc))
    else:
        action = outcome.action
        before = f"r{action.before_revision.number}" if action.before_revision else "—"
        after = f"r{action.after_revision.number}" if action.after_revision else "—"
        text = f"{action.get_kind_display()} applied: {before} → {after}."
        messages.success(request, "That action was already applied." if outcome.duplicate else text)
    return redirect(reverse("dashboards:route-detail", args=[route.pk]) + f"?project={route.project.slug}")


@require_POST
@require_role(Role.OPERATOR)
def route_rollback(request: HttpRequest, route_id: int) -> HttpResponse:
    to_revision = request.POST.get("to_revision")

    def run(services: Any, route: Any, actor: Any, reason: str, expected: int | None) -> Any:
        target = int(to_revision) if to_revision and to_revision.isdigit() else None
        return services.rollback(route, actor, reason, to_revision=target, expected_version=expected)

    return _act(request, route_id, run)


WEIGHT_FIELD = "weight:"  # custom-weight inputs are named ``weight:<gateway id>``


def posted_weights(post: Any) -> dict[str, float] | None:
    """``{gateway id: percent}`` from the custom-weight inputs (blank = 0), or None when the form had none.

    Only parsing happens here; ``services.validate_weights`` owns the rules (known ids, 0-100, sum 100, a healthy
    target), so the form, the preview and the API refuse the same things.
    """
    from controlplane.routing import services

    keys = [k for k in post if k.startswith(WEIGHT_FIELD)]
    if not keys:
        return None
    weights: dict[str, float] = {}
    for key in keys:
        raw = post.get(key, "").strip()
        try:
            weights[key[len(WEIGHT_FIELD):]] = float(raw) if raw else 0.0
        except ValueError:
            raise services.RoutingError(f"Weight for {key[len(WEIGHT_FIELD):]} must be a number, got {raw!r}.") \
                from None
    return weights


@require_POST
@require_role(Role.OPERATOR)
def route_reroute_preview(request: HttpRequest, route_id: int) -> HttpResponse:
    """The confirm dialog's impact preview for custom weights (HTML fragment); 422 with the reason if invalid."""
    from controlplane.routing import preview, services

    route = _route_or_404(request, route_id)
    current = route.active_revision
    try:
        weights = posted_weights(request.POST)
        if weights is None:
            raise services.RoutingError("Give a weight for at least one deployment.")
        clean = services.validate_weights(route, weights, list(current.paused) if current else [])
    except services.RoutingError as exc:
        return render(request, "dashboards/_reroute_preview.html", {"error": str(exc)}, status=422)
    target = {k: v for k, v in clean.items() if v > 0}
    try:
        impact = preview.impact(route, current, weights=target)
        error = ""
    except Exception as exc:  # advisory, like the service treats it: the reroute itself may still go ahead
        impact, error = None, str(exc)
    return render(request, "dashboards/_reroute_preview.html", {"impact": impact, "preview_error": error,
                                                                "weights": target})


@require_POST
@require_role(Role.OPERATOR)
def route_reroute(request: HttpRequest, route_id: int) -> HttpResponse:
    """100 % to one deployment (``deployment``) or custom weights (``weight:<gateway id>`` inputs)."""
    deployment = request.POST.get("deployment", "")

    def run(services: Any, route: Any, actor: Any, reason: str, expected: int | None) -> Any:
        weights = posted_weights(request.POST)
        return services.reroute(route, actor, reason, weights=weights if weights is not None else {deployment: 100.0},
                                expected_version=expected)

    return _act(request, route_id, run)
