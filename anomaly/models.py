"""Detector settings, the evidence detectors leave, and the alert lifecycle built on it.

State changes of :class:`Alert` go through :mod:`anomaly.alerts` only (persist, record the transition, then
notify and publish); nothing else writes ``Alert.state``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from controlplane.models import Project


class DetectorKind(models.TextChoices):
    """What a detector watches. Each periodic kind maps to one metric of one rollup family (see ``sweep``)."""

    LATENCY_P95 = "latency_p95", "Latency p95"
    LATENCY_P99 = "latency_p99", "Latency p99"
    TTFT_P95 = "ttft_p95", "Time to first token p95"
    OUTPUT_TPS = "output_tokens_per_second", "Output tokens per second"
    ERROR_RATE = "error_rate", "Error rate"
    ERROR_RATE_BY_TYPE = "error_rate_by_type", "Error rate by error type"
    COST_PER_MINUTE = "cost_per_minute", "Cost per minute"
    COST_PER_CALL = "cost_per_call", "Cost per call"
    TOKENS_PER_CALL = "tokens_per_call", "Tokens per call"
    VOLUME = "volume", "Call volume"
    UNPRICED_SHARE = "unpriced_share", "Unpriced share"
    MULTIVARIATE = "multivariate", "Joint metrics (IsolationForest)"
    DRIFT = "drift", "Distribution drift (current vs reference)"
    CANARY = "canary", "New model version vs previous"
    ROUTING = "routing", "Routing / remediation page"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class DetectorConfig(models.Model):
    """Per project × detector kind. Rows are created lazily with defaults by ``configs_for``."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="detector_configs")
    kind = models.CharField(max_length=40, choices=DetectorKind.choices)
    enabled = models.BooleanField(default=True)
    sensitivity = models.FloatField(default=0.5, help_text="0 (fewest alerts) … 1 (most alerts).")
    min_calls = models.PositiveIntegerField(default=0, help_text="Series with fewer calls over the window are skipped.")
    cooldown_minutes = models.PositiveIntegerField(
        default=30, help_text="A breach this soon after recovery re-opens the same alert instead of paging again."
    )
    renotify_minutes = models.PositiveIntegerField(
        default=0, help_text="Re-send a firing, unacknowledged alert this often; 0 = never."
    )
    params = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "kind"], name="one_config_per_detector")]
        ordering = ["project", "kind"]

    def __str__(self) -> str:
        return f"{self.project} / {self.kind}"


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


OPEN_STATES = (AlertState.FIRING, AlertState.ACKNOWLEDGED)


class Alert(models.Model):
    """One incident on one series for one detector; at most one open alert per fingerprint."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=64, help_text="sha256 of detector kind × series key.")
    detector = models.CharField(max_length=40, choices=DetectorKind.choices)
    series_key = models.JSONField(default=dict, help_text="route, model_version or service of the watched series.")
    route = models.CharField(max_length=200, blank=True, db_index=True)
    title = models.CharField(max_length=300)
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.FIRING)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_alerts"
    )
    snoozed_until = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    episode_started_at = models.DateTimeField(
        help_text="Start of the detector episode, so a manually resolved episode is not re-opened by the next sweep."
    )
    renotify_minutes = models.PositiveIntegerField(default=0)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    group_key = models.CharField(max_length=64, db_index=True, help_text="Alerts sharing it form one incident.")
    incident = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="grouped_alerts",
        help_text="The alert that paged for this incident; null on the alert that paged.",
    )
    # The remediation app points its actions at alerts (``Action.alert``); this reverse link is all we need.

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "fingerprint"],
                condition=models.Q(state__in=["firing", "acknowledged"]),
                name="one_open_alert_per_fingerprint",
            )
        ]
        indexes = [models.Index(fields=["project", "state", "-opened_at"])]

    def __str__(self) -> str:
        return f"{self.title} [{self.state}]"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


class Detection(models.Model):
    """Evidence: what a detector saw, what it expected, and the points the UI draws the band from."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="detections")
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="detections")
    detector = models.CharField(max_length=40, choices=DetectorKind.choices)
    series_key = models.JSONField(default=dict)
    metric = models.CharField(max_length=60)
    method = models.CharField(max_length=60)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    observed = models.FloatField(null=True)
    expected = models.FloatField(null=True)
    lower = models.FloatField(null=True)
    upper = models.FloatField(null=True)
    score = models.FloatField(null=True)
    p_value = models.FloatField(null=True, blank=True)
    statistic = models.FloatField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    points = models.JSONField(default=list, blank=True, help_text="[[epoch_s, observed, expected, lower, upper], …]")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "detector", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.detector} {self.method} {self.window_start:%Y-%m-%d %H:%M}"


class AlertTransition(models.Model):
    """Every change of an alert: who (null = Keel itself), when, from, to, why."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="transitions")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=20)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    reason = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.alert_id}: {self.from_state or '-'} → {self.to_state} ({self.action})"


class Silence(models.Model):
    """Suppresses notifications (not detection) for matching alerts between ``starts_at`` and ``ends_at``.

    Empty matchers match everything; a maintenance window is a silence with ``is_maintenance`` set.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="silences")
    route = models.CharField(max_length=200, blank=True)
    detector = models.CharField(max_length=40, blank=True, choices=DetectorKind.choices)
    severity = models.CharField(max_length=16, blank=True, choices=Severity.choices)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    is_maintenance = models.BooleanField(default=False)
    comment = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"silence {self.route or '*'}/{self.detector or '*'}/{self.severity or '*'}"

    def matches(self, alert: Alert) -> bool:
        return (
            (not self.route or self.route == alert.route)
            and (not self.detector or self.detector == alert.detector)
            and (not self.severity or self.severity == alert.severity)
        )


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (signed JSON)"
    SLACK = "slack", "Slack incoming webhook"
    EMAIL = "email", "Email"
    PAGERDUTY = "pagerduty", "PagerDuty Events API v2"


class NotificationChannel(models.Model):
    """Where alert events go. ``config``: webhook {url, secret}; slack {url}; email {to: [...]};
    pagerduty {routing_key, events_url?}. ``min_severity`` filters what the channel receives."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="notification_channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    config = models.JSONField(default=dict)
    enabled = models.BooleanField(default=True)
    min_severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.INFO)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class AttemptStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class NotificationAttempt(models.Model):
    """One event for one channel, with its delivery history. ``(channel, alert, event, event_seq)`` is unique so a
    re-run of the code that queued it cannot send it twice."""

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="attempts")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notification_attempts")
    event = models.CharField(max_length=20)
    event_seq = models.PositiveIntegerField(default=0, help_text="Transition id that caused the event.")
    status = models.CharField(max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    payload = models.JSONField(default=dict)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "alert", "event", "event_seq"], name="one_attempt_per_event")
        ]
        indexes = [models.Index(fields=["status", "next_retry_at"])]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel} [{self.status}]"
