"""Routes, deployments, immutable routing revisions, actions, remediation policies, budgets and gateway adapters.

A ``Route`` is the logical model name applications call (a LiteLLM model group) per project and environment.
A ``RouteRevision`` is an immutable, numbered routing policy; exactly one is active per route (a partial unique
constraint), and only ``controlplane.routing.services`` flips which one. ``Action`` records who changed what,
why, and how it went, including the ``anomaly.Alert`` it answers. The audit log keeps plain ids only, so it
survives deletion of anything it mentions.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from .projects import Project


class Route(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="routes")
    environment = models.CharField(max_length=100, blank=True, default="")
    name = models.CharField(max_length=200, help_text="The model name applications send (LiteLLM model group).")
    discovered = models.BooleanField(default=False, help_text="Created from spans rather than declared.")
    version = models.PositiveIntegerField(default=0, help_text="Bumped on every activation; optimistic locking.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "environment"]
        constraints = [
            models.UniqueConstraint(fields=["project", "environment", "name"], name="one_route_per_name_and_env"),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.environment}" if self.environment else self.name

    @property
    def active_revision(self) -> RouteRevision | None:
        return self.revisions.filter(is_active=True).first()


class Deployment(models.Model):
    """One upstream a route can send traffic to; ``gateway_id`` is the gateway's id (LiteLLM ``model_info.id``)."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="deployments")
    gateway_id = models.CharField(max_length=200)
    provider = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    model_version = models.CharField(max_length=200, blank=True, default="", help_text="gen_ai.response.model")
    healthy = models.BooleanField(default=True)
    discovered = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gateway_id"]
        constraints = [models.UniqueConstraint(fields=["route", "gateway_id"], name="one_deployment_per_gateway_id")]

    def __str__(self) -> str:
        return self.gateway_id


class ImmutableRecord(Exception):
    """An attempt to change or delete a record that is append-only."""


class RouteRevision(models.Model):
    """Immutable routing policy: ``weights`` {gateway_id: percent}, ``fallbacks`` [route names], ``paused`` [ids].

    Only ``is_active`` may change after creation, and only through the routing services.
    """

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    weights = models.JSONField(default=dict)
    fallbacks = models.JSONField(default=list, blank=True)
    paused = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=False)
    note = models.CharField(max_length=300, blank=True, default="")
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["route", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["route", "number"], name="revision_number_unique_per_route"),
            models.UniqueConstraint(fields=["route"], condition=Q(is_active=True),
                                    name="one_active_revision_per_route"),
        ]

    def __str__(self) -> str:
        return f"{self.route} r{self.number}{' (active)' if self.is_active else ''}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and set(kwargs.get("update_fields") or ()) != {"is_active"}:
            raise ImmutableRecord("Route revisions are immutable; create a new revision instead.")
        super().save(*args, **kwargs)

    def effective_weights(self) -> dict[str, float]:
        """Weights with paused deployments removed (what the gateway should actually use)."""
        paused = set(self.paused)
        return {k: float(v) for k, v in self.weights.items() if k not in paused and float(v) > 0}

    def as_policy(self) -> dict[str, Any]:
        return {"revision": self.number, "weights": self.effective_weights(), "paused": list(self.paused),
                "fallbacks": list(self.fallbacks)}


class ActionKind(models.TextChoices):
    ROLLBACK = "rollback", "Rollback"
    REROUTE = "reroute", "Reroute"
    PAUSE = "pause", "Pause deployment"
    RESUME = "resume", "Resume deployment"


class ActionState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    FAILED = "failed", "Failed"
    REVERTED = "reverted", "Reverted"


class Action(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="routing_actions")
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=16, choices=ActionKind.choices)
    state = models.CharField(max_length=16, choices=ActionState.choices, default=ActionState.PENDING)
    actor = models.CharField(max_length=200, help_text="user:<name>, api-key:<id> or policy:<id>")
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.TextField(blank=True, default="")
    alert = models.ForeignKey("anomaly.Alert", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="routing_actions")
    policy = models.ForeignKey("Policy", null=True, blank=True, on_delete=models.SET_NULL, related_name="actions")
    before_revision = models.ForeignKey(RouteRevision, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    after_revision = models.ForeignKey(RouteRevision, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")
    params = models.JSONField(default=dict, blank=True)
    preview = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    # NULL (not "") when absent, so the partial unique constraint ignores actions without a key.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    automatic = models.BooleanField(default=False)
    verify_after = models.DateTimeField(null=True, blank=True)
    verification = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["route", "idempotency_key"], name="action_idempotency_key_unique",
                                    condition=Q(idempotency_key__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.route} ({self.state})"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise ImmutableRecord("The audit log is append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ImmutableRecord("The audit log is append-only.")


class AuditEntry(models.Model):
    """Append-only record of every action and automated decision (the logging contract)."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="audit_entries")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=200)
    event = models.CharField(max_length=64, help_text="e.g. action.applied, policy.held_back")
    route_name = models.CharField(max_length=200, blank=True, default="")
    route_id = models.BigIntegerField(null=True, blank=True)
    action_id = models.BigIntegerField(null=True, blank=True)
    alert_id = models.BigIntegerField(null=True, blank=True)
    summary = models.CharField(max_length=500, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.event}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ImmutableRecord("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ImmutableRecord("The audit log is append-only.")


class RoutingPolicyVersion(models.Model):
    """The monotonic version of a project's gateway policy document (bumped with every activation)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="routing_policy_version")
    version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.project} v{self.version}"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class PolicyMode(models.TextChoices):
    SUGGEST = "suggest", "Suggest only"
    APPROVE = "approve", "Require approval"
    AUTO = "auto", "Automatic"


class Policy(models.Model):
    """Auto-remediation: when an alert matches, take an action within guardrails, then verify recovery."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="remediation_policies")
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    detector = models.CharField(max_length=100, blank=True, default="", help_text="Empty = any detector.")
    route = models.ForeignKey(Route, null=True, blank=True, on_delete=models.CASCADE, related_name="policies",
                              help_text="Empty = the alert's route.")
    min_severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    min_duration_s = models.PositiveIntegerField(default=0, help_text="The alert must have been open this long.")
    action = models.CharField(max_length=16, choices=[
        (ActionKind.ROLLBACK, "Rollback"), (ActionKind.REROUTE, "Reroute to"), (ActionKind.PAUSE, "Pause")])
    reroute_to = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    mode = models.CharField(max_length=16, choices=PolicyMode.choices, default=PolicyMode.SUGGEST)
    cooldown_s = models.PositiveIntegerField(default=600)
    max_actions_per_hour = models.PositiveIntegerField(default=3)
    min_calls = models.PositiveIntegerField(default=20, help_text="No action on low-volume data.")
    max_staleness_s = models.PositiveIntegerField(default=600, help_text="No action on stale data.")
    verify_after_s = models.PositiveIntegerField(default=600)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name


class BudgetPeriod(models.TextChoices):
    DAY = "day", "Per day"
    MONTH = "month", "Per month"


class BudgetResponse(models.TextChoices):
    REROUTE_CHEAPER = "reroute_cheaper", "Reroute to the cheapest deployment"
    ALERT = "alert", "Alert only"


class Budget(models.Model):
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="budgets")
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.DAY)
    limit_usd = models.DecimalField(max_digits=14, decimal_places=4)
    on_exceed = models.CharField(max_length=20, choices=BudgetResponse.choices, default=BudgetResponse.ALERT)
    enabled = models.BooleanField(default=True)
    last_triggered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["route", "period"], name="one_budget_per_route_period")]

    def __str__(self) -> str:
        return f"{self.route} {self.limit_usd} USD/{self.period}"


class AdapterKind(models.TextChoices):
    LITELLM_ADMIN = "litellm_admin", "LiteLLM admin API (push)"
    WEBHOOK = "webhook", "HMAC-signed webhook (push)"


class GatewayAdapter(models.Model):
    """A push target. Pull-mode gateways (the LiteLLM plugin) need no row: they read the policy endpoint."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gateway_adapters")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=AdapterKind.choices)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=500, blank=True, default="",
                              help_text="LiteLLM master/admin key, or the webhook HMAC secret.")
    enabled = models.BooleanField(default=True)
    timeout_s = models.FloatField(default=5.0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class GatewaySync(models.Model):
    """One adapter call and its result."""

    adapter = models.ForeignKey(GatewayAdapter, on_delete=models.CASCADE, related_name="syncs")
    action = models.ForeignKey(Action, null=True, blank=True, on_delete=models.SET_NULL, related_name="syncs")
    revision = models.ForeignKey(RouteRevision, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField(default=False)
    calls = models.JSONField(default=list, help_text="[{method, url, body, status, response}]")
    error = models.TextField(blank=True, default="")
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.adapter} {'ok' if self.ok else 'failed'} @ {self.at}"
