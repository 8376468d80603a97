"""Alerts: a live feed (WebSocket pushes, the feed fragment re-renders), detail with evidence, and the
ack / snooze / resolve / assign forms, which call ``anomaly.alerts`` — the alert lifecycle's one write path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from controlplane.models import Membership, Role
from dashboards import figures, sources
from dashboards.access import access_of, require_role
from dashboards.views.context import page

STATES = {"open": ["firing", "acknowledged"], "firing": ["firing"], "acknowledged": ["acknowledged"],
          "resolved": ["resolved"], "all": []}
VERBS = {"ack": Role.ONCALL, "snooze": Role.ONCALL, "resolve": Role.ONCALL, "assign": Role.ONCALL}
SNOOZE_CHOICES = [(30, "30 min"), (60, "1 h"), (240, "4 h"), (1440, "1 day")]


def _alerts(request: HttpRequest) -> tuple[list[Any] | None, dict[str, str]]:
    Alert = sources.alert_model()
    chosen = {"state": request.GET.get("state", "open"), "severity": request.GET.get("severity", ""),
              "detector": request.GET.get("detector", ""), "route": request.GET.get("route", "")}
    chosen = {k: "" if "\x00" in v else v for k, v in chosen.items()}  # PostgreSQL refuses NUL (DataError → 500)
    if chosen["state"] not in STATES:
        chosen["state"] = "open"
    if Alert is None:
        return None, chosen
    qs = Alert.objects.filter(project=access_of(request).project).select_related("assignee")
    if STATES[chosen["state"]]:
        qs = qs.filter(state__in=STATES[chosen["state"]])
    for field in ("severity", "detector", "route"):
        if chosen[field]:
            qs = qs.filter(**{field: chosen[field]})
    return list(qs.order_by("-opened_at", "-id")[:200]), chosen


def _feed_query(request: HttpRequest, chosen: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode({"project": access_of(request).project.slug, **{k: v for k, v in chosen.items() if v}})


@require_role(Role.VIEWER)
def alert_list(request: HttpRequest) -> HttpResponse:
    alerts, chosen = _alerts(request)
    return page(request, "dashboards/alerts.html", "alerts", {}, show_filters=False, alerts=alerts, chosen=chosen,
                states=list(STATES), feed_url=reverse("dashboards:alert-feed") + "?" + _feed_query(request, chosen))


@require_role(Role.VIEWER)
def alert_feed(request: HttpRequest) -> HttpResponse:
    """The table body alone; the page's script re-fetches it when a live alert event arrives."""
    alerts, _chosen = _alerts(request)
    return render(request, "dashboards/_alert_rows.html", {"alerts": alerts, "project": access_of(request).project})


def _alert_or_404(request: HttpRequest, alert_id: int) -> Any:
    Alert = sources.alert_model()
    if Alert is None:
        raise Http404("Alerting is not installed.")
    alert = Alert.objects.filter(project=access_of(request).project, pk=alert_id).select_related("assignee").first()
    if alert is None:
        raise Http404("No such alert in this project.")
    return alert


def _evidence_figure(detection: Any) -> figures.Figure | None:
    points = detection.points or []
    if not points:
        return None
    times = [datetime.fromtimestamp(p[0], UTC) for p in points]
    cols = list(zip(*[(p + [None] * 5)[1:5] for p in points], strict=True))
    return figures.band(times, cols[0], cols[1], cols[2], cols[3],
                        f"{detection.metric}: observed vs expected ({detection.method})")


@require_role(Role.VIEWER)
def alert_detail(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = _alert_or_404(request, alert_id)
    detections = list(alert.detections.order_by("-created_at")[:5])
    figs = {}
    evidence = next((d for d in detections if d.points), None)
    if evidence is not None:
        fig = _evidence_figure(evidence)
        if fig:
            figs["evidence"] = fig
    routing = sources.routing_models()
    actions = list(routing.Action.objects.filter(alert=alert).select_related("route").order_by("-created_at")) \
        if routing is not None else None
    members = Membership.objects.filter(project=access_of(request).project).select_related("user") \
        .filter(role__in=[Role.ONCALL, Role.OPERATOR, Role.ADMIN]).order_by("user__username")
    proposals = []
    if routing is not None:  # what remediation policies decided for this alert (audited by the routing app)
        from controlplane.models import AuditEntry

        proposals = list(AuditEntry.objects.filter(project=alert.project, alert_id=alert.pk,
                                                   event__startswith="policy.").order_by("-at")[:10])
    policies = {p.name: p for p in routing.Policy.objects.filter(project=alert.project)} if routing else {}
    return page(request, "dashboards/alert_detail.html", "alerts", figs, show_filters=False, alert=alert,
                detections=detections, evidence=evidence, actions=actions, members=members,
                snooze_choices=SNOOZE_CHOICES, service_ready=_service() is not None,
                proposals=[(e, policies.get((e.data or {}).get("policy", ""))) for e in proposals])


@require_POST
@require_role(Role.OPERATOR)
def approve_proposal(request: HttpRequest, alert_id: int, policy_id: int) -> HttpResponse:
    """An operator approves what a remediation policy proposed; ``controlplane.routing.policies`` acts."""
    from controlplane.routing import policies, services

    alert = _alert_or_404(request, alert_id)
    routing = sources.routing_models()
    policy = routing.Policy.objects.filter(project=alert.project, pk=policy_id).first() if routing else None
    if policy is None:
        raise Http404("No such policy in this project.")
    try:
        outcome = policies.approve(policy, alert.pk, services.Actor.for_request(request))
    except services.RoutingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Approved: {outcome.action.get_kind_display()} on {outcome.action.route}.")
    return redirect(_back(request, alert))


def _service() -> Any:
    return sources.optional_module("anomaly.alerts")


@require_POST
@require_role(Role.ONCALL)
def alert_action(request: HttpRequest, alert_id: int, verb: str) -> HttpResponse:
    if verb not in VERBS:
        raise Http404("Unknown alert action.")
    if not access_of(request).allows(VERBS[verb]):
        raise PermissionDenied("Acknowledging, snoozing, resolving and assigning alerts needs the On-call role.")
    alert = _alert_or_404(request, alert_id)
    service = _service()
    if service is None:
        messages.error(request, "Alert actions are not available in this build.")
        return redirect(_back(request, alert))
    try:
        _apply(service, alert, verb, request)
    except (ValidationError, ValueError, service.AlertError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, f"Alert {verb}: {alert.title}")
    return redirect(_back(request, alert))


def _apply(service: Any, alert: Any, verb: str, request: HttpRequest) -> None:
    user = request.user
    reason = request.POST.get("reason", "").strip()[:2000]
    if verb == "ack":
        service.acknowledge(alert, actor=user, reason=reason)
    elif verb == "resolve":
        service.resolve(alert, actor=user, reason=reason)
    elif verb == "snooze":
        minutes = int(request.POST.get("minutes", "60"))
        if minutes not in dict(SNOOZE_CHOICES):
            raise ValueError("Pick one of the snooze durations offered.")
        service.snooze(alert, actor=user, until=datetime.now(UTC) + timedelta(minutes=minutes), reason=reason)
    elif verb == "assign":
        username = request.POST.get("assignee", "")
        assignee = None
        if username:
            assignee = get_user_model().objects.filter(
                username=username, memberships__project=access_of(request).project).first()
            if assignee is None:
                raise ValueError(f"{username} is not a member of this project.")
        service.assign(alert, actor=user, assignee=assignee, reason=reason)


def _back(request: HttpRequest, alert: Any) -> str:
    project = access_of(request).project.slug
    if request.POST.get("next") == "list":
        return reverse("dashboards:alerts") + f"?project={project}"
    return reverse("dashboards:alert-detail", args=[alert.pk]) + f"?project={project}"
