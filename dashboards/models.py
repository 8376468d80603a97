"""Page-specific configuration: service-level objectives per route (budgets belong to the routing app)."""

from __future__ import annotations

from django.db import models

from controlplane.models import Project


class SloMetric(models.TextChoices):
    ERROR_RATE = "error_rate", "Error rate below threshold (share of calls)"
    LATENCY_P95 = "latency_p95", "Latency p95 below threshold (ms, per time slice)"
    TTFT_P95 = "ttft_p95", "TTFT p95 below threshold (ms, per time slice)"


class ServiceLevelObjective(models.Model):
    """``objective`` of calls (error rate) or of time slices (latency) must meet ``threshold`` on ``route``."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="slos")
    route = models.CharField(max_length=200)
    metric = models.CharField(max_length=20, choices=SloMetric.choices)
    threshold = models.FloatField(help_text="ms for latency metrics; ignored for error rate (a failed call is bad).")
    objective = models.FloatField(default=0.99, help_text="Target good share, e.g. 0.99.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "route", "metric"], name="one_slo_per_route_metric"),
                       models.CheckConstraint(condition=models.Q(objective__gt=0, objective__lt=1),
                                              name="slo_objective_between_0_and_1")]
        ordering = ["route", "metric"]

    def __str__(self) -> str:
        return f"{self.route}: {self.get_metric_display()} ({self.objective:.2%})"
