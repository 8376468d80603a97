"""The one write path for alert state.

Every change goes: lock the row → persist → record an :class:`AlertTransition` → (after commit) queue notifications
and publish the change to the project's live group. Detection-driven changes (``observe``, ``auto_resolve``) and
people's changes (``acknowledge``, ``snooze``, ``resolve``, ``assign``) share ``_transition``.

Paging rules, so one incident is one page:

* one open alert per fingerprint (detector × series) — a database constraint, so concurrent sweeps cannot double it;
* a new episode within ``cooldown_minutes`` of the previous alert's auto-resolution re-opens that alert silently;
* an alert whose group (same route, or same service) already has an open alert, or that opens within
  ``CORRELATION_WINDOW`` of another open incident of the project, joins that incident and does not page; only
  the incident's leader notifies;
* a manually resolved alert is not re-opened by the same detector episode;
* silences and snoozes suppress notifications, never detection or the audit trail.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from anomaly.models import (
    OPEN_STATES,
    SEVERITY_RANK,
    Alert,
    AlertState,
    AlertTransition,
    Detection,
    Severity,
    Silence,
)
from controlplane import realtime
from controlplane.metrics import ALERTS
from controlplane.models import Project

logger = logging.getLogger(__name__)

# A detector episode whose start moved by less than this is the same episode (the replayed window slides).
SAME_EPISODE_TOLERANCE = timedelta(minutes=30)
CRITICAL_SCORE = 3.0
# Alerts on different routes opening this close together are taken to share a cause (one page).
CORRELATION_WINDOW = timedelta(minutes=10)


class AlertError(Exception):
    """A requested change does not apply to the alert in its current state (answered as 400/409)."""


def fingerprint(project: Project, detector: str, series_key: dict[str, str]) -> str:
    material = json.dumps([project.tenant_id, detector, sorted(series_key.items())], separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()[:40]


def group_key(project: Project, series_key: dict[str, str]) -> str:
    """Alerts on the same route (any model version, detector or error type), or the same service, in the same
    environment form one incident: an error burst seen as the overall rate and as its error type is one page."""
    scope = series_key.get("route") or f"service:{series_key.get('service', '')}"
    if series_key.get("environment"):
        scope = f"{series_key['environment']}/{scope}"
    return hashlib.sha256(f"{project.tenant_id}|{scope}".encode()).hexdigest()[:40]


def severity_for(score: float) -> Severity:
    return Severity.CRITICAL if score >= CRITICAL_SCORE else Severity.WARNING


@dataclass
class Observation:
    """What the sweep (or a drift job) saw on one series: an open detector episode with its evidence."""

    project: Project
    detector: str
    series_key: dict[str, str]
    title: str
    score: float
    episode_started_at: datetime
    metric: str
    method: str
    window_start: datetime
    window_end: datetime
    observed: float | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    p_value: float | None = None
    statistic: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    points: list[list[float | None]] = field(default_factory=list)
    cooldown_minutes: int = 30
    renotify_minutes: int = 0

    @property
    def severity(self) -> Severity:
        return severity_for(self.score)

    def detection(self, alert: Alert | None) -> Detection:
        return Detection(
            project=self.project,
            alert=alert,
            detector=self.detector,
            series_key=self.series_key,
            metric=self.metric,
            method=self.method,
            window_start=self.window_start,
            window_end=self.window_end,
            observed=self.observed,
            expected=self.expected,
            lower=self.lower,
            upper=self.upper,
            score=self.score,
            p_value=self.p_value,
            statistic=self.statistic,
            details=self.details,
            points=self.points,
        )


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The shape sent to browsers and webhooks."""
    return {
        "id": alert.pk,
        "fingerprint": alert.fingerprint,
        "project": alert.project.slug,
        "detector": alert.detector,
        "series": alert.series_key,
        "route": alert.route,
        "title": alert.title,
        "state": alert.state,
        "severity": alert.severity,
        "assignee": alert.assignee.get_username() if alert.assignee_id else None,  # type: ignore[union-attr]
        "snoozed_until": alert.snoozed_until.isoformat() if alert.snoozed_until else None,
        "opened_at": alert.opened_at.isoformat(),
        "last_seen_at": alert.last_seen_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "incident": alert.incident_id,
    }


def is_silenced(alert: Alert, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    active = Silence.objects.filter(project_id=alert.project_id, starts_at__lte=now, ends_at__gt=now)
    return any(s.matches(alert) for s in active)


def _transition(
    alert: Alert,
    action: str,
    to_state: str,
    *,
    actor: Any = None,
    reason: str = "",
    now: datetime,
    from_state: str | None = None,
    notify: bool = True,
) -> AlertTransition:
    """Record the (already saved) change and arrange notification + live publish once the transaction commits."""
    transition = AlertTransition.objects.create(
        alert=alert,
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        from_state=alert.state if from_state is None else from_state,
        to_state=to_state,
        reason=reason[:2000],
        at=now,
    )
    ALERTS.labels(alert.detector, action).inc()
    if notify:
        from anomaly import notifications

        notifications.queue_event(alert, action, transition.pk, now=now)
    payload = {**alert_payload(alert), "event": action, "reason": reason}
    project_id = alert.project_id
    transaction.on_commit(lambda: realtime.publish(project_id, "alert", payload))
    return transition


def _hand_to_remediation(alert: Alert) -> None:
    """After commit, let the remediation policies decide on a firing detector alert (routing's own pages never
    loop back). Policies are re-evaluated on every refresh, so a policy's minimum duration can be reached."""
    if alert.detector == "routing":
        return
    alert_id = alert.pk

    def enqueue() -> None:
        from controlplane.routing.tasks import on_alert_fired

        try:
            on_alert_fired.delay(alert_id)
        except Exception:  # the broker being down must not undo a stored alert; the next refresh retries
            logger.exception("could not queue remediation for alert %s", alert_id)

    transaction.on_commit(enqueue)


def _open_alert(project: Project, fp: str) -> Alert | None:
    return Alert.objects.select_for_update().filter(project=project, fingerprint=fp, state__in=OPEN_STATES).first()


def observe(obs: Observation, *, now: datetime | None = None) -> Alert | None:
    """Open, refresh or re-open the alert for an open detector episode; returns it (None if intentionally quiet)."""
    now = now or timezone.now()
    fp = fingerprint(obs.project, obs.detector, obs.series_key)
    try:
        with transaction.atomic():
            return _observe_locked(obs, fp, now)
    except IntegrityError:
        # Another sweep opened the same fingerprint between our read and insert: refresh theirs instead.
        with transaction.atomic():
            return _observe_locked(obs, fp, now)


def _observe_locked(obs: Observation, fp: str, now: datetime) -> Alert | None:
    alert = _open_alert(obs.project, fp)
    if alert is not None:
        _refresh(alert, obs, now)
        if alert.state == AlertState.FIRING:
            _hand_to_remediation(alert)
        return alert
    previous = Alert.objects.filter(project=obs.project, fingerprint=fp).order_by("-opened_at", "-id").first()
    if previous is not None and previous.resolved_at is not None:
        manual = previous.transitions.filter(action="resolved", actor__isnull=False).exists() or (
            previous.transitions.filter(action="resolved").order_by("-at").values_list("reason", flat=True).first()
            or ""
        ).startswith("manual")
        if manual and abs(previous.episode_started_at - obs.episode_started_at) <= SAME_EPISODE_TOLERANCE:
            return None  # someone resolved this very episode by hand; respect it until a new episode starts
        if previous.resolved_at >= now - timedelta(minutes=obs.cooldown_minutes):
            reopened = _reopen(previous, obs, now)
            _hand_to_remediation(reopened)
            return reopened
    return _create(obs, fp, now)


def _create(obs: Observation, fp: str, now: datetime) -> Alert:
    gk = group_key(obs.project, obs.series_key)
    leaders = Alert.objects.filter(project=obs.project, state__in=OPEN_STATES, incident__isnull=True).order_by(
        "opened_at", "id"
    )
    # Same route (or service): one incident. Anything else opening within the cooldown of an open incident is
    # most likely the same cause seen from another series (the service view of a route, a provider outage).
    leader = leaders.filter(group_key=gk).first() or leaders.filter(opened_at__gte=now - CORRELATION_WINDOW).first()
    alert = Alert.objects.create(
        project=obs.project,
        fingerprint=fp,
        detector=obs.detector,
        series_key=obs.series_key,
        route=obs.series_key.get("route", ""),
        title=obs.title[:300],
        state=AlertState.FIRING,
        severity=obs.severity,
        opened_at=now,
        last_seen_at=now,
        episode_started_at=obs.episode_started_at,
        renotify_minutes=obs.renotify_minutes,
        group_key=gk,
        incident=leader,
    )
    obs.detection(alert).save()
    reason = f"{obs.method}: observed {_fmt(obs.observed)} vs expected {_fmt(obs.expected)} (score {obs.score:.2f})"
    if leader is not None:
        reason += f"; grouped into incident #{leader.pk}"
    _transition(alert, "opened", AlertState.FIRING, reason=reason, now=now, from_state="", notify=leader is None)
    if leader is None:
        alert.last_notified_at = now
        alert.save(update_fields=["last_notified_at"])
    _hand_to_remediation(alert)
    return alert


def _reopen(alert: Alert, obs: Observation, now: datetime) -> Alert:
    """Within the cooldown a new breach is the same incident: back to firing without paging again."""
    from_state = alert.state
    alert.state = AlertState.FIRING
    alert.resolved_at = None
    alert.last_seen_at = now
    alert.episode_started_at = obs.episode_started_at
    alert.severity = obs.severity
    alert.save(update_fields=["state", "resolved_at", "last_seen_at", "episode_started_at", "severity"])
    obs.detection(alert).save()
    _transition(
        alert, "reopened", AlertState.FIRING, reason="breached again within the cooldown", now=now,
        from_state=from_state, notify=False,
    )
    return alert


def _refresh(alert: Alert, obs: Observation, now: datetime) -> None:
    """Still breaching: keep the evidence current; escalate (and notify) only if severity rises."""
    alert.last_seen_at = now
    fields = ["last_seen_at"]
    latest = alert.detections.order_by("-created_at", "-id").first()
    if latest is not None:
        latest.window_end = obs.window_end
        latest.observed, latest.expected, latest.lower, latest.upper = obs.observed, obs.expected, obs.lower, obs.upper
        latest.score = max(latest.score or 0.0, obs.score)
        latest.points = obs.points
        latest.details = {**latest.details, **obs.details}
        latest.save(
            update_fields=["window_end", "observed", "expected", "lower", "upper", "score", "points", "details"]
        )
    if SEVERITY_RANK[Severity(obs.severity)] > SEVERITY_RANK[Severity(alert.severity)]:
        old = alert.severity
        alert.severity = obs.severity
        fields.append("severity")
        alert.save(update_fields=fields)
        obs.detection(alert).save()
        _transition(
            alert, "escalated", alert.state, reason=f"severity {old} → {obs.severity}", now=now,
            notify=alert.incident_id is None,
        )
        return
    alert.save(update_fields=fields)


def auto_resolve(alert: Alert, *, now: datetime | None = None, reason: str = "recovered") -> Alert:
    """The detector's episode has ended (after its hysteresis): resolve without a person."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if not locked.is_open:
            return locked
        from_state = locked.state
        locked.state = AlertState.RESOLVED
        locked.resolved_at = now
        locked.save(update_fields=["state", "resolved_at"])
        _transition(
            locked, "resolved", AlertState.RESOLVED, reason=f"auto: {reason}", now=now, from_state=from_state,
            notify=locked.incident_id is None,
        )
    return locked


def _locked(alert_id: int) -> Alert:
    return Alert.objects.select_for_update().select_related("project").get(pk=alert_id)


def acknowledge(alert: Alert, *, actor: Any, reason: str = "", now: datetime | None = None) -> Alert:
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(alert.pk)
        if locked.state != AlertState.FIRING:
            raise AlertError(f"only a firing alert can be acknowledged; this one is {locked.state}")
        locked.state = AlertState.ACKNOWLEDGED
        locked.save(update_fields=["state"])
        _transition(
            locked, "acknowledged", AlertState.ACKNOWLEDGED, actor=actor, reason=reason, now=now,
            from_state=AlertState.FIRING, notify=locked.incident_id is None,
        )
    return locked


def resolve(alert: Alert, *, actor: Any, reason: str = "", now: datetime | None = None) -> Alert:
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(alert.pk)
        if not locked.is_open:
            raise AlertError("this alert is already resolved")
        from_state = locked.state
        locked.state = AlertState.RESOLVED
        locked.resolved_at = now
        locked.save(update_fields=["state", "resolved_at"])
        _transition(
            locked, "resolved", AlertState.RESOLVED, actor=actor, reason=f"manual: {reason}".rstrip(": "), now=now,
            from_state=from_state, notify=locked.incident_id is None,
        )
    return locked


def snooze(alert: Alert, *, actor: Any, until: datetime, reason: str = "", now: datetime | None = None) -> Alert:
    """Keep the alert open but send nothing until ``until`` (then re-notify if it still fires)."""
    now = now or timezone.now()
    if until <= now:
        raise AlertError("snooze needs a time in the future")
    with transaction.atomic():
        locked = _locked(alert.pk)
        if not locked.is_open:
            raise AlertError("a resolved alert cannot be snoozed")
        locked.snoozed_until = until
        locked.save(update_fields=["snoozed_until"])
        _transition(
            locked, "snoozed", locked.state, actor=actor, reason=reason or f"until {until.isoformat()}", now=now,
            notify=False,
        )
    return locked


def assign(alert: Alert, *, actor: Any, assignee: Any, reason: str = "", now: datetime | None = None) -> Alert:
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(alert.pk)
        locked.assignee = assignee
        locked.save(update_fields=["assignee"])
        who = assignee.get_username() if assignee is not None else "nobody"
        _transition(
            locked, "assigned", locked.state, actor=actor, reason=reason or f"assigned to {who}", now=now,
            notify=False,
        )
    return locked


def raise_alert(
    *, project: Project, title: str, detail: str, route: str = "", source: str = "routing",
    now: datetime | None = None,
) -> Alert | None:
    """A page from another part of Keel (a failed push, a failed verification, a budget breach): critical, deduped
    on source × route × title while open, and delivered like any detector alert."""
    now = now or timezone.now()
    obs = Observation(
        project=project,
        detector="routing",
        series_key={"route": route, "source": source, "title": title[:120]},
        title=title,
        score=CRITICAL_SCORE,
        episode_started_at=now,
        metric=source,
        method=source,
        window_start=now,
        window_end=now,
        details={"detail": detail[:4000]},
    )
    return observe(obs, now=now)


def renotify_due(project: Project, *, now: datetime | None = None) -> int:
    """Re-page firing, unacknowledged incident leaders per their re-notify policy, or once a snooze has ended."""
    now = now or timezone.now()
    sent = 0
    candidates = Alert.objects.filter(project=project, state=AlertState.FIRING, incident__isnull=True)
    for alert in candidates:
        if alert.snoozed_until and alert.snoozed_until > now:
            continue
        last = alert.last_notified_at or alert.opened_at
        snooze_ended = alert.snoozed_until is not None and last < alert.snoozed_until <= now
        periodic = alert.renotify_minutes > 0 and last <= now - timedelta(minutes=alert.renotify_minutes)
        if not (snooze_ended or periodic):
            continue
        with transaction.atomic():
            locked = _locked(alert.pk)
            locked.last_notified_at = now
            locked.save(update_fields=["last_notified_at"])
            _transition(
                locked, "renotified", locked.state, reason="snooze ended" if snooze_ended else "re-notify policy",
                now=now,
            )
        sent += 1
    return sent


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
