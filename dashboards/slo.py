"""SLO compliance and error-budget burn rate per route, computed from the rollups for the page's window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from controlplane.models import Project
from dashboards.models import ServiceLevelObjective, SloMetric
from dashboards.queries import rollups
from dashboards.queries.scope import Scope


@dataclass(frozen=True)
class SloStatus:
    slo: ServiceLevelObjective
    bad: int
    total: int

    @property
    def bad_share(self) -> float | None:
        return self.bad / self.total if self.total else None

    @property
    def burn_rate(self) -> float | None:
        """How fast the error budget burns: 1.0 spends exactly the budget over the window, 14.4 pages."""
        share = self.bad_share
        return None if share is None else share / (1 - self.slo.objective)

    @property
    def met(self) -> bool | None:
        share = self.bad_share
        return None if share is None else share <= 1 - self.slo.objective

    @property
    def describe(self) -> str:
        if self.slo.metric == SloMetric.ERROR_RATE:
            return f"{self.slo.objective:.2%} of calls succeed"
        what = "p95 latency" if self.slo.metric == SloMetric.LATENCY_P95 else "p95 TTFT"
        return f"{what} < {self.slo.threshold:,.0f} ms in {self.slo.objective:.2%} of time slices"

    @property
    def unit(self) -> str:
        return "calls" if self.slo.metric == SloMetric.ERROR_RATE else "time slices"


def slo_status(project: Project, scope: Scope, routes: list[rollups.BreakdownRow]) -> list[SloStatus]:
    by_route = {r.key: r for r in routes}
    out = []
    for slo in ServiceLevelObjective.objects.filter(project=project):
        if slo.metric == SloMetric.ERROR_RATE:
            row = by_route.get(slo.route)
            bad, total = (row.errors, row.calls) if row else (0, 0)
        else:
            bad, total = rollups.slow_bucket_share(scope, slo.route, slo.metric, slo.threshold)
        out.append(SloStatus(slo, bad, total))
    return out


class SloSerializer(serializers.ModelSerializer):
    """Validation for SLO writes (the Settings form): one objective per route and metric, a good share in (0, 1),
    and a positive millisecond threshold for the latency metrics. Needs the project in its context."""

    class Meta:
        model = ServiceLevelObjective
        fields = ["id", "route", "metric", "threshold", "objective"]
        read_only_fields = ["id"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        def current(name: str) -> Any:
            return attrs.get(name, getattr(self.instance, name, None))

        objective = current("objective")
        if objective is not None and not 0 < objective < 1:
            raise serializers.ValidationError({"objective": "The objective is a share between 0 and 1, e.g. 0.99."})
        if current("metric") != SloMetric.ERROR_RATE and (current("threshold") or 0) <= 0:
            raise serializers.ValidationError({"threshold": "A latency objective needs a threshold in ms above 0."})
        clash = ServiceLevelObjective.objects.filter(project=self.context["project"], route=current("route"),
                                                     metric=current("metric"))
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"metric": "This route already has an objective for this metric."})
        return attrs
