"""The write paths for routing: declare, discover, rollback, reroute, pause, resume.

Each action runs one sequence: lock the route, check the caller saw the current version, de-duplicate, validate,
record a pending ``Action`` with its preview, create the (inactive) target revision, push it to every enabled
push adapter, and only if every push succeeded flip the active revision and bump the policy version (pull-mode
gateways see that on their next poll). A failed push leaves the previous revision active, marks the action
failed and raises an alert: never a half-applied state. Every outcome is audited, then published.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from controlplane import realtime
from controlplane.metrics import ACTIONS
from controlplane.models import Action, Deployment, Project, Route, RouteRevision
from controlplane.models.routing import ActionKind, ActionState
from controlplane.routing import audit, policy_document

logger = logging.getLogger(__name__)

DUPLICATE_WINDOW = timedelta(seconds=10)
WEIGHT_TOTAL = 100.0


class RoutingError(Exception):
    """Bad input for a routing action; the active revision is unchanged."""


class StaleVersion(RoutingError):
    """The caller acted on an older route version (another operator was first)."""

    def __init__(self, route: Route) -> None:
        super().__init__(f"Route {route} is at version {route.version}; reload and try again.")
        self.route = route


class PushFailed(RoutingError):
    """A push adapter failed; the action is recorded as failed and the previous revision stays active."""

    def __init__(self, action: Action) -> None:
        super().__init__(f"Gateway push failed, previous revision kept active: {action.error}")
        self.action = action


@dataclass(frozen=True)
class Actor:
    """Who acts: ``label`` is what the audit log shows (``user:alice``, ``api-key:12``, ``policy:3``)."""

    label: str
    user: Any = None

    @classmethod
    def for_request(cls, request: Any) -> Actor:
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "pk", None) is not None:
            return cls(f"user:{user.get_username()}", user)
        return cls(str(user) if user is not None else "anonymous")


@dataclass(frozen=True)
class Outcome:
    action: Action
    duplicate: bool = False


# ---------------------------------------------------------------- declare and discover


def declare_route(project: Project, name: str, environment: str = "", *, actor: Actor,
                  discovered: bool = False) -> Route:
    name = name.strip()
    if not name:
        raise RoutingError("A route needs a name.")
    route, created = Route.objects.get_or_create(project=project, environment=environment, name=name,
                                                 defaults={"discovered": discovered})
    if created:
        audit.append(project, actor.label, "route.declared" if not discovered else "route.discovered",
                     f"route {route}", route=route)
    return route


def declare_deployment(route: Route, gateway_id: str, *, actor: Actor, provider: str = "", model: str = "",
                       model_version: str = "", discovered: bool = False) -> Deployment:
    """Add a deployment; the first deployment of a route gets an initial revision sending it 100 %."""
    gateway_id = gateway_id.strip()
    if not gateway_id:
        raise RoutingError("A deployment needs its gateway id (LiteLLM model_info.id).")
    with transaction.atomic():
        Route.objects.select_for_update().get(pk=route.pk)
        deployment, created = Deployment.objects.get_or_create(
            route=route, gateway_id=gateway_id,
            defaults={"provider": provider, "model": model, "model_version": model_version, "discovered": discovered},
        )
        if created:
            audit.append(route.project, actor.label, "deployment.declared" if not discovered else
                         "deployment.discovered", f"deployment {gateway_id} on {route}", route=route,
                         data={"gateway_id": gateway_id, "provider": provider, "model": model,
                               "model_version": model_version})
            if not route.revisions.exists():
                _activate_initial(route, {gateway_id: WEIGHT_TOTAL}, actor)
    return deployment


def _activate_initial(route: Route, weights: dict[str, float], actor: Actor) -> RouteRevision:
    revision = RouteRevision.objects.create(route=route, number=1, weights=weights, is_active=True,
                                            note="initial", created_by=actor.label)
    Route.objects.filter(pk=route.pk).update(version=route.version + 1)
    route.version += 1
    policy_document.bump_version(route.project)
    audit.append(route.project, actor.label, "revision.initial", f"{route} r1", route=route,
                 data={"weights": weights})
    return revision


def set_deployment_health(deployment: Deployment, healthy: bool, *, actor: Actor, reason: str = "") -> Deployment:
    """Mark a deployment (un)healthy: unhealthy ones are never chosen as a target and never count as the last one."""
    if deployment.healthy != healthy:
        Deployment.objects.filter(pk=deployment.pk).update(healthy=healthy)
        deployment.healthy = healthy
        audit.append(deployment.route.project, actor.label, "deployment.health",
                     f"{deployment.gateway_id} on {deployment.route} marked {'healthy' if healthy else 'unhealthy'}",
                     route=deployment.route, data={"gateway_id": deployment.gateway_id, "healthy": healthy,
                                                   "reason": reason})
    return deployment


def discover_from_spans(project: Project, *, days: int = 7) -> list[Deployment]:
    """Create routes and deployments seen in ``llm_calls`` (tenant-scoped); returns the new deployments."""
    from controlplane.routing import queries

    actor = Actor("system:discovery")
    created: list[Deployment] = []
    for seen in queries.seen_deployments(project.tenant_id, timezone.now() - timedelta(days=days)):
        route = declare_route(project, seen.route, seen.environment, actor=actor, discovered=True)
        gateway_id = seen.deployment_id or (
            f"{seen.provider}/{seen.response_model}" if seen.provider else seen.response_model)
        if not gateway_id or route.deployments.filter(gateway_id=gateway_id).exists():
            continue
        created.append(declare_deployment(route, gateway_id, actor=actor, provider=seen.provider,
                                          model=seen.response_model, model_version=seen.response_model,
                                          discovered=True))
    return created


# ---------------------------------------------------------------- validation


def validate_weights(route: Route, weights: Any, paused: list[str]) -> dict[str, float]:
    """Percentages per known deployment, summing to 100, with at least one healthy, unpaused target."""
    if not isinstance(weights, dict) or not weights:
        raise RoutingError("weights must be a non-empty object {deployment id: percent}.")
    known = {d.gateway_id: d for d in route.deployments.all()}
    unknown = sorted(str(k) for k in weights if str(k) not in known)
    if unknown:
        raise RoutingError(f"Unknown deployment id(s) for route {route}: {', '.join(unknown)}; "
                           f"known: {', '.join(sorted(known)) or 'none'}.")
    clean: dict[str, float] = {}
    for key, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise RoutingError(f"Weight for {key} must be a number between 0 and 100, got {value!r}.")
        if value > WEIGHT_TOTAL:
            raise RoutingError(f"Weight for {key} is {value}; weights are percentages (0-100).")
        clean[str(key)] = float(value)
    total = sum(clean.values())
    if abs(total - WEIGHT_TOTAL) > 0.01:
        raise RoutingError(f"Weights must sum to 100 (percent); they sum to {total:g}.")
    targets = [k for k, w in clean.items() if w > 0 and k not in paused and known[k].healthy]
    if not targets:
        raise RoutingError(f"Route {route} would have no healthy, unpaused deployment with traffic.")
    return {k: clean.get(k, 0.0) for k in sorted(known)}


# ---------------------------------------------------------------- actions


def rollback(route: Route, actor: Actor, reason: str = "", to_revision: int | None = None, *,
             expected_version: int | None = None, alert: Any = None, idempotency_key: str | None = None,
             policy: Any = None, automatic: bool = False) -> Outcome:
    """Re-activate the previous revision (the one active before the current one), or revision ``to_revision``."""
    def target(current: RouteRevision | None) -> RouteRevision:
        if to_revision is not None:
            chosen = route.revisions.filter(number=to_revision).first()
            if chosen is None:
                raise RoutingError(f"Route {route} has no revision {to_revision}.")
        else:
            chosen = _previous_revision(route, current)
            if chosen is None:
                raise RoutingError(f"Route {route} has no earlier revision to roll back to.")
        if current is not None and chosen.pk == current.pk:
            raise RoutingError(f"Revision {chosen.number} is already active on {route}.")
        _check_servable(route, chosen)
        return chosen

    return _act(route, ActionKind.ROLLBACK, actor, reason, target, {"to_revision": to_revision},
                expected_version=expected_version, alert=alert, idempotency_key=idempotency_key, policy=policy,
                automatic=automatic)


def reroute(route: Route, actor: Actor, reason: str = "", *, weights: dict[str, float],
            fallbacks: list[str] | None = None, expected_version: int | None = None, alert: Any = None,
            idempotency_key: str | None = None, policy: Any = None, automatic: bool = False) -> Outcome:
    """New weights (e.g. ``{"v2": 100}`` or a 90/10 canary); unknown ids, bad sums or no target are refused."""
    def target(current: RouteRevision | None) -> RouteRevision:
        paused = list(current.paused) if current else []
        clean = validate_weights(route, weights, paused)
        keep_fallbacks = list(current.fallbacks) if current and fallbacks is None else list(fallbacks or [])
        return _new_revision(route, actor, clean, paused, keep_fallbacks, "reroute")

    return _act(route, ActionKind.REROUTE, actor, reason, target, {"weights": weights, "fallbacks": fallbacks},
                expected_version=expected_version, alert=alert, idempotency_key=idempotency_key, policy=policy,
                automatic=automatic)


def pause(route: Route, actor: Actor, reason: str = "", *, deployment: str, expected_version: int | None = None,
          alert: Any = None, idempotency_key: str | None = None, policy: Any = None,
          automatic: bool = False) -> Outcome:
    """Take one deployment out; refused if it would leave no healthy deployment with traffic."""
    def target(current: RouteRevision | None) -> RouteRevision:
        if current is None:
            raise RoutingError(f"Route {route} has no active revision.")
        _require_deployment(route, deployment)
        if deployment in current.paused:
            raise RoutingError(f"Deployment {deployment} is already paused on {route}.")
        paused = [*current.paused, deployment]
        if not _renormalised(route, dict(current.weights), paused):
            raise RoutingError(f"Refusing to pause {deployment}: it is the last healthy deployment of {route}.")
        return _new_revision(route, actor, dict(current.weights), paused, list(current.fallbacks),
                             f"pause {deployment}")

    return _act(route, ActionKind.PAUSE, actor, reason, target, {"deployment": deployment},
                expected_version=expected_version, alert=alert, idempotency_key=idempotency_key, policy=policy,
                automatic=automatic)


def resume(route: Route, actor: Actor, reason: str = "", *, deployment: str, expected_version: int | None = None,
           alert: Any = None, idempotency_key: str | None = None) -> Outcome:
    def target(current: RouteRevision | None) -> RouteRevision:
        if current is None:
            raise RoutingError(f"Route {route} has no active revision.")
        _require_deployment(route, deployment)
        if deployment not in current.paused:
            raise RoutingError(f"Deployment {deployment} is not paused on {route}.")
        paused = [d for d in current.paused if d != deployment]
        return _new_revision(route, actor, dict(current.weights), paused, list(current.fallbacks),
                             f"resume {deployment}")

    return _act(route, ActionKind.RESUME, actor, reason, target, {"deployment": deployment},
                expected_version=expected_version, alert=alert, idempotency_key=idempotency_key, policy=None,
                automatic=False)


def revert(action: Action, actor: Actor, reason: str) -> Outcome:
    """Undo an applied action by re-activating its ``before`` revision; marks the original as reverted."""
    if action.state != ActionState.APPLIED or action.before_revision is None:
        raise RoutingError(f"Action {action.pk} is {action.state} and cannot be reverted.")
    outcome = rollback(action.route, actor, reason, to_revision=action.before_revision.number,
                       alert=action.alert, automatic=True)
    Action.objects.filter(pk=action.pk).update(state=ActionState.REVERTED)
    audit.append(action.project, actor.label, "action.reverted", f"action {action.pk} reverted: {reason}",
                 route=action.route, action_id=action.pk, alert_id=action.alert_id,
                 data={"revert_action": outcome.action.pk})
    return outcome


# ---------------------------------------------------------------- internals


def _previous_revision(route: Route, current: RouteRevision | None) -> RouteRevision | None:
    """The revision that was active before the current one (from applied actions), else the next lower number."""
    if current is not None:
        last = (Action.objects.filter(route=route, state__in=[ActionState.APPLIED, ActionState.REVERTED],
                                      after_revision=current, before_revision__isnull=False)
                .order_by("-applied_at", "-id").first())
        if last is not None and last.before_revision is not None:
            return last.before_revision
        return route.revisions.filter(number__lt=current.number).order_by("-number").first()
    return route.revisions.order_by("-number").first()


def _require_deployment(route: Route, gateway_id: str) -> Deployment:
    deployment = route.deployments.filter(gateway_id=gateway_id).first()
    if deployment is None:
        known = ", ".join(route.deployments.values_list("gateway_id", flat=True)) or "none"
        raise RoutingError(f"Unknown deployment id {gateway_id!r} for route {route}; known: {known}.")
    return deployment


def _renormalised(route: Route, weights: dict[str, Any], paused: list[str]) -> dict[str, float]:
    healthy = set(route.deployments.filter(healthy=True).values_list("gateway_id", flat=True))
    return {k: float(v) for k, v in weights.items() if k not in paused and float(v) > 0 and k in healthy}


def _check_servable(route: Route, revision: RouteRevision) -> None:
    healthy = set(route.deployments.filter(healthy=True).values_list("gateway_id", flat=True))
    if not any(k in healthy for k in revision.effective_weights()):
        raise RoutingError(f"Revision {revision.number} of {route} has no healthy deployment with traffic.")


def _new_revision(route: Route, actor: Actor, weights: dict[str, float], paused: list[str], fallbacks: list[str],
                  note: str) -> RouteRevision:
    number = (route.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    return RouteRevision.objects.create(route=route, number=number, weights=weights, paused=paused,
                                        fallbacks=fallbacks, note=note[:300], created_by=actor.label)


def _same_request(action: Action, kind: str, params: dict[str, Any], actor: Actor, alert: Any) -> bool:
    """A double click: same actor, same action, same parameters, answering the same alert (or none)."""
    return (action.kind == kind and action.params == params and action.actor == actor.label
            and action.alert_id == getattr(alert, "pk", None))


def _act(route: Route, kind: str, actor: Actor, reason: str, pick_target: Any, params: dict[str, Any], *,
         expected_version: int | None, alert: Any, idempotency_key: str | None, policy: Any,
         automatic: bool) -> Outcome:
    from controlplane.gateways import push
    from controlplane.routing import preview as preview_module

    project = route.project
    alert_obj = alert
    with transaction.atomic():
        route = Route.objects.select_for_update().select_related("project").get(pk=route.pk)
        if idempotency_key:
            existing = Action.objects.filter(route=route, idempotency_key=idempotency_key).first()
            if existing is not None:
                return Outcome(existing, duplicate=True)
        recent = Action.objects.filter(route=route, created_at__gte=timezone.now() - DUPLICATE_WINDOW,
                                       state__in=[ActionState.PENDING, ActionState.APPLIED]).order_by("-id").first()
        if recent is not None and _same_request(recent, kind, params, actor, alert_obj):
            return Outcome(recent, duplicate=True)
        if expected_version is not None and expected_version != route.version:
            raise StaleVersion(route)
        current = route.revisions.filter(is_active=True).first()
        target = pick_target(current)
        try:
            preview = preview_module.impact(route, current, target)
        except Exception as exc:  # a preview is advisory; ClickHouse being down must not block a rollback
            logger.warning("preview failed for %s: %s", route, exc)
            preview = {"error": str(exc)}
        try:
            action = Action.objects.create(
                project=project, route=route, kind=kind, actor=actor.label, actor_user=actor.user, reason=reason,
                alert=alert_obj, policy=policy, before_revision=current, after_revision=target, params=params,
                preview=preview, idempotency_key=idempotency_key or None, automatic=automatic,
            )
        except IntegrityError:  # the same idempotency key raced in; the first one wins
            existing = Action.objects.get(route=route, idempotency_key=idempotency_key)
            return Outcome(existing, duplicate=True)
        results = push.push_revision(route, target, action)
        failed = [r for r in results if not r.ok]
        if failed:
            action.state = ActionState.FAILED
            ACTIONS.labels(kind, "failed").inc()
            action.error = "; ".join(f"{r.adapter.name}: {r.error}" for r in failed)[:4000]
            action.save(update_fields=["state", "error"])
            audit.append(project, actor.label, "action.failed", f"{kind} on {route} failed: {action.error}",
                         route=route, action_id=action.pk, alert_id=action.alert_id,
                         data={"before": _num(current), "after": target.number, "reason": reason})
        else:
            if current is not None:
                current.is_active = False
                current.save(update_fields=["is_active"])
            target.is_active = True
            target.save(update_fields=["is_active"])
            route.version += 1
            Route.objects.filter(pk=route.pk).update(version=route.version)
            policy_version = policy_document.bump_version(project)
            action.state = ActionState.APPLIED
            ACTIONS.labels(kind, "applied").inc()
            action.applied_at = timezone.now()
            action.save(update_fields=["state", "applied_at"])
            audit.append(project, actor.label, "action.applied",
                         f"{kind} on {route}: r{_num(current)} → r{target.number}", route=route,
                         action_id=action.pk, alert_id=action.alert_id,
                         data={"kind": kind, "before": _num(current), "after": target.number, "reason": reason,
                               "params": params, "policy_version": policy_version, "automatic": automatic})
    if failed:
        _raise_push_alert(action)
        realtime.publish(project.pk, "routing.action", _event(action))
        raise PushFailed(action)
    realtime.publish(project.pk, "routing.action", _event(action))
    return Outcome(action)


def _num(revision: RouteRevision | None) -> int | None:
    return revision.number if revision is not None else None


def _event(action: Action) -> dict[str, Any]:
    return {"id": action.pk, "route": str(action.route), "kind": action.kind, "state": action.state,
            "after": _num(action.after_revision), "before": _num(action.before_revision)}


def _raise_push_alert(action: Action) -> None:
    from controlplane.routing import paging

    paging.page(action.project, f"Gateway push failed for {action.kind} on {action.route}", action.error,
                route=action.route, action=action)
