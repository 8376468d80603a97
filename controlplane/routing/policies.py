"""Auto-remediation: alert → matching policies → guardrails → action (or suggestion) → verification.

``on_alert_fired(alert_id)`` is called by the alerts engine when an alert fires; ``verify_pending_actions()`` and
``enforce_budgets()`` run periodically (see ``controlplane/routing/tasks.py``). Every decision is audited, including
"matched but held back by a guardrail", because this is the logging contract for automated AI decisions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from controlplane.models import Action, AuditEntry, Budget, Policy, Route
from controlplane.models.routing import (
    SEVERITY_RANK,
    ActionKind,
    ActionState,
    BudgetPeriod,
    BudgetResponse,
    PolicyMode,
    Severity,
)
from controlplane.routing import audit, paging, queries, services
from controlplane.routing.services import Actor, PushFailed, RoutingError

logger = logging.getLogger(__name__)

GUARD_WINDOW = timedelta(minutes=15)
PAGE_DETECTOR = "routing"  # the detector name anomaly.alerts.raise_alert gives the pages routing raises
RECOVERY_FACTOR = 0.8  # the metric must fall to 80 % of its value at decision time (or the alert must resolve)

# Which rollup metric tells whether an alert's problem went away.
METRIC_FOR_DETECTOR = {
    "latency_p95": "latency_p95_ms", "latency_p99": "latency_p95_ms", "ttft_p95": "latency_p95_ms",
    "error_rate": "error_rate", "cost_per_call": "cost_per_call", "cost_per_minute": "cost_per_call",
    "canary": "error_rate",
}


@dataclass
class Decision:
    policy_id: int
    outcome: str  # executed | suggested | awaiting_approval | held_back | failed | not_matched
    reason: str = ""
    action_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _route_for_alert(alert: Any) -> Route | None:
    routes = Route.objects.filter(project_id=alert.project_id, name=alert.route)
    environment = (alert.series_key or {}).get("environment")
    if environment is not None:
        exact = routes.filter(environment=environment).first()
        if exact is not None:
            return exact
    return routes.order_by("environment").first()


def _matches(policy: Policy, alert: Any, route: Route | None, now: datetime) -> str:
    """'' when the policy matches the alert, else why not."""
    if policy.detector and policy.detector != alert.detector:
        return "detector differs"
    if policy.route_id is not None and (route is None or route.pk != policy.route_id):
        return "route differs"
    if SEVERITY_RANK[Severity(alert.severity)] < SEVERITY_RANK[Severity(policy.min_severity)]:
        return "severity below threshold"
    opened = getattr(alert, "episode_started_at", None) or alert.opened_at
    if (now - opened).total_seconds() < policy.min_duration_s:
        return f"alert open {int((now - opened).total_seconds())} s < {policy.min_duration_s} s"
    return ""


def _guardrail(policy: Policy, route: Route, now: datetime) -> tuple[str, dict[str, Any]]:
    """'' when the guardrails allow acting now, else the guardrail that holds the action back."""
    automatic = Action.objects.filter(route=route, automatic=True, state__in=[
        ActionState.APPLIED, ActionState.REVERTED, ActionState.PENDING])
    last = automatic.order_by("-created_at").first()
    if last is not None and (now - last.created_at).total_seconds() < policy.cooldown_s:
        return f"cooldown: last automatic action {int((now - last.created_at).total_seconds())} s ago", {}
    recent = automatic.filter(created_at__gte=now - timedelta(hours=1)).count()
    if recent >= policy.max_actions_per_hour:
        return f"rate limit: {recent} automatic actions on this route in the last hour", {}
    stats, newest = queries.route_stats_1m(route.project.tenant_id, route.name, route.environment, now - GUARD_WINDOW)
    context = {"calls_15m": stats.calls, "newest_minute": newest.isoformat() if newest else None}
    if stats.calls < policy.min_calls:
        return f"low volume: {stats.calls} calls in 15 min < {policy.min_calls}", context
    if newest is not None:
        newest_aware = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        if (now - newest_aware).total_seconds() > policy.max_staleness_s:
            return f"stale data: newest minute {newest_aware:%H:%M} is older than {policy.max_staleness_s} s", context
    return "", {**context, **stats.as_dict()}


def _pause_target(policy: Policy, alert: Any, route: Route) -> str | None:
    key = alert.series_key or {}
    for candidate in (key.get("deployment"), key.get("gateway_deployment_id")):
        if candidate and route.deployments.filter(gateway_id=candidate).exists():
            return str(candidate)
    version = key.get("model_version") or key.get("response_model")
    if version:
        found = route.deployments.filter(model_version=version).first()
        if found is not None:
            return found.gateway_id
    return None


def _execute(policy: Policy, route: Route, alert: Any, actor: Actor, reason: str, *,
             automatic: bool = True, expected_version: int | None = None) -> services.Outcome:
    common = {"alert": alert, "policy": policy, "automatic": automatic, "expected_version": expected_version}
    if policy.action == ActionKind.ROLLBACK:
        return services.rollback(route, actor, reason, **common)
    if policy.action == ActionKind.REROUTE:
        if policy.reroute_to is None:
            raise RoutingError("policy has no reroute target")
        return services.reroute(route, actor, reason, weights={policy.reroute_to.gateway_id: 100.0}, **common)
    target = _pause_target(policy, alert, route)
    if target is None:
        raise RoutingError("the alert does not name a deployment of this route to pause")
    return services.pause(route, actor, reason, deployment=target, **common)


def approve(policy: Policy, alert_id: int, actor: Actor, *, expected_version: int | None = None) -> services.Outcome:
    """An operator approves what a ``require approval`` (or ``suggest``) policy proposed for an alert."""
    from anomaly.models import Alert

    alert = Alert.objects.filter(pk=alert_id, project_id=policy.project_id).first()
    if alert is None:
        raise RoutingError(f"Unknown alert {alert_id}.")
    route = policy.route or _route_for_alert(alert)
    if route is None:
        raise RoutingError(f"No route named {alert.route!r} is known.")
    proposed = AuditEntry.objects.filter(project_id=policy.project_id, alert_id=alert.pk,
                                         event__in=["policy.awaiting_approval", "policy.suggested"],
                                         data__policy=policy.name).exists()
    if not proposed:
        raise RoutingError(f"Policy {policy.name!r} has not proposed an action for alert {alert_id}.")
    outcome = _execute(policy, route, alert, actor, f"approved proposal of policy {policy.name!r} on alert {alert.pk}",
                       automatic=False, expected_version=expected_version)
    if not outcome.duplicate:
        audit.append(policy.project, actor.label, "policy.approved", f"{policy.name}: {outcome.action.kind} approved",
                     route=route, action_id=outcome.action.pk, alert_id=alert.pk, data={"policy": policy.name})
    return outcome


def on_alert_fired(alert_id: int, now: datetime | None = None) -> list[Decision]:
    """Evaluate every enabled policy of the alert's project; audit each decision; act when mode is automatic."""
    from anomaly.models import Alert

    now = now or timezone.now()
    alert = Alert.objects.select_related("project").filter(pk=alert_id).first()
    if alert is None or alert.detector == PAGE_DETECTOR:
        return []  # routing's own pages (failed push, failed verification) never trigger remediation: no loops
    route = _route_for_alert(alert)
    decisions: list[Decision] = []
    for policy in Policy.objects.filter(project_id=alert.project_id, enabled=True).select_related("reroute_to"):
        why_not = _matches(policy, alert, route, now) or (
            "already decided for this alert" if _decided(alert.pk, policy.name) else "")
        if why_not:
            decisions.append(Decision(policy.pk, "not_matched", why_not))
            continue
        actor = Actor(f"policy:{policy.pk}")
        base: dict[str, Any] = {"policy": policy.name, "mode": policy.mode, "action": policy.action,
                                "detector": alert.detector, "severity": alert.severity}
        if route is None:
            decision = Decision(policy.pk, "held_back", f"no route named {alert.route!r} is known", data=base)
        else:
            held, context = _guardrail(policy, route, now)
            base |= {"guard": context}
            if held:
                decision = Decision(policy.pk, "held_back", held, data=base)
            elif policy.mode == PolicyMode.SUGGEST:
                decision = Decision(policy.pk, "suggested", f"suggest {policy.action} on {route}", data=base)
            elif policy.mode == PolicyMode.APPROVE:
                decision = Decision(policy.pk, "awaiting_approval",
                                    f"{policy.action} on {route} awaits an operator", data=base)
            else:
                decision = _auto(policy, route, alert, actor, base, context, now)
        summary = f"{policy.name}: {decision.reason}"
        if decision.outcome in _ONCE_PER_ALERT or _last_summary(alert.pk, policy.name) != summary:
            # Alerts are re-evaluated on every sweep; an unchanged "held back" is recorded once, not every minute.
            audit.append(alert.project, actor.label, f"policy.{decision.outcome}", summary,
                         route=route, action_id=decision.action_id, alert_id=alert.pk, data=decision.data)
        decisions.append(decision)
    return decisions


# Outcomes after which a policy is done with an alert (it is not evaluated again for that alert).
_ONCE_PER_ALERT = {"executed", "suggested", "awaiting_approval", "failed"}


def _decided(alert_id: int, policy_name: str) -> bool:
    events = [f"policy.{outcome}" for outcome in _ONCE_PER_ALERT]
    return AuditEntry.objects.filter(alert_id=alert_id, event__in=events, data__policy=policy_name).exists()


def _last_summary(alert_id: int, policy_name: str) -> str | None:
    return (AuditEntry.objects.filter(alert_id=alert_id, data__policy=policy_name, event__startswith="policy.")
            .order_by("-id").values_list("summary", flat=True).first())


def _auto(policy: Policy, route: Route, alert: Any, actor: Actor, base: dict[str, Any], context: dict[str, Any],
          now: datetime) -> Decision:
    reason = f"policy {policy.name!r} on alert {alert.pk} ({alert.detector}, {alert.severity})"
    try:
        outcome = _execute(policy, route, alert, actor, reason)
    except PushFailed as exc:
        return Decision(policy.pk, "failed", str(exc), exc.action.pk, base)
    except RoutingError as exc:
        return Decision(policy.pk, "held_back", str(exc), data=base)
    metric = METRIC_FOR_DETECTOR.get(alert.detector, "error_rate")
    verification = {"metric": metric, "before": context.get(metric), "alert_id": alert.pk}
    Action.objects.filter(pk=outcome.action.pk).update(
        verify_after=now + timedelta(seconds=policy.verify_after_s), verification=verification)
    return Decision(policy.pk, "executed", f"{outcome.action.kind} applied (action {outcome.action.pk})",
                    outcome.action.pk, base | {"verification": verification})


def _recovered(action: Action) -> tuple[bool, dict[str, Any]]:
    spec = dict(action.verification)
    if action.alert is not None and action.alert.state == "resolved":
        return True, {**spec, "result": "alert resolved"}
    since = action.applied_at or action.created_at
    stats, _ = queries.route_stats_1m(action.project.tenant_id, action.route.name, action.route.environment, since)
    after = stats.as_dict().get(spec.get("metric", "error_rate"))
    before = spec.get("before")
    spec |= {"after": after, "calls_after": stats.calls}
    if after is None:
        return False, {**spec, "result": "no traffic after the action: recovery not confirmed"}
    if before is None:
        return True, {**spec, "result": "no baseline; metric present after the action"}
    ok = after <= float(before) * RECOVERY_FACTOR
    return ok, {**spec, "result": "recovered" if ok else "not recovered"}


def verify_pending_actions(now: datetime | None = None) -> list[tuple[int, bool]]:
    """Check automatic actions whose verification time has come; revert and page when not recovered."""
    now = now or timezone.now()
    results: list[tuple[int, bool]] = []
    due = Action.objects.filter(automatic=True, state=ActionState.APPLIED, verify_after__lte=now).select_related(
        "project", "route", "alert", "before_revision")
    for action in due:
        if "result" in action.verification:
            continue
        ok, verification = _recovered(action)
        verification["checked_at"] = now.isoformat()
        Action.objects.filter(pk=action.pk).update(verification=verification)
        actor = Actor("policy:verification")
        audit.append(action.project, actor.label, "policy.verified" if ok else "policy.verification_failed",
                     f"action {action.pk}: {verification['result']}", route=action.route, action_id=action.pk,
                     alert_id=action.alert_id, data=verification)
        if not ok:
            try:
                services.revert(action, actor, f"verification failed: {verification['result']}")
            except RoutingError as exc:
                verification["revert_error"] = str(exc)
            paging.page(action.project, f"Automatic {action.kind} on {action.route} did not fix the problem",
                        f"Reverted action {action.pk}: {verification}", route=action.route, action=action)
        results.append((action.pk, ok))
    return results


def _period_start(period: str, now: datetime) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == BudgetPeriod.DAY else day.replace(day=1)


def _projected_spend(spend: float, period: str, start: datetime, now: datetime) -> float | None:
    """Spend extrapolated to the whole period at the current rate; None until 10 % of the period has passed."""
    if period == BudgetPeriod.DAY:
        length = timedelta(days=1)
    else:
        next_month = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        length = next_month - start
    elapsed = now - start
    if elapsed < length * 0.1:
        return None
    return spend * (length / elapsed)


def enforce_budgets(now: datetime | None = None) -> list[str]:
    """A route over budget (projected spend rate) is rerouted to its cheapest deployment, or alerted on."""
    from controlplane.routing import preview

    now = now or timezone.now()
    outcomes: list[str] = []
    for budget in Budget.objects.filter(enabled=True).select_related("route", "route__project"):
        route = budget.route
        start = _period_start(budget.period, now)
        if budget.last_triggered_at is not None and budget.last_triggered_at >= start:
            continue  # one response per period
        spend = queries.route_spend(route.project.tenant_id, route.name, route.environment, start)
        projected = _projected_spend(spend, budget.period, start, now)
        if spend <= float(budget.limit_usd) and (projected is None or projected <= float(budget.limit_usd)):
            continue
        Budget.objects.filter(pk=budget.pk).update(last_triggered_at=now)
        actor = Actor(f"budget:{budget.pk}")
        data = {"spend": spend, "projected": projected, "limit": float(budget.limit_usd), "period": budget.period}
        if budget.on_exceed == BudgetResponse.REROUTE_CHEAPER:
            stats = preview.deployment_stats(route)
            priced = sorted((s.cost_per_call, gid) for gid, s in stats.items() if s.cost_per_call is not None
                            and route.deployments.filter(gateway_id=gid, healthy=True).exists())
            if priced:
                cheapest = priced[0][1]
                try:
                    outcome = services.reroute(route, actor, f"budget exceeded: {spend:.4f} > {budget.limit_usd}",
                                               weights={cheapest: 100.0}, automatic=True)
                    audit.append(route.project, actor.label, "budget.rerouted", f"{route} → {cheapest}",
                                 route=route, action_id=outcome.action.pk, data=data)
                    outcomes.append(f"rerouted {route} to {cheapest}")
                    continue
                except RoutingError as exc:
                    data["reroute_error"] = str(exc)
        paging.page(route.project, f"Route {route} is over its {budget.period} budget",
                    f"spend {spend:.4f} USD > {budget.limit_usd} USD", route=route)
        audit.append(route.project, actor.label, "budget.exceeded", f"{route} over budget", route=route, data=data)
        outcomes.append(f"alerted {route}")
    return outcomes
