"""Impact preview shown before an action runs: last 24 h of the target deployments vs the current ones.

Figures come from the hourly rollups by model version; deployments whose traffic is only distinguishable by the
gateway deployment id (LiteLLM reports the model group as the response model) are read from ``llm_calls`` over the
same bounded 24 h window. Both reads are tenant-scoped query objects in ``queries``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from controlplane.models import Route, RouteRevision
from controlplane.routing import queries
from controlplane.routing.queries import EMPTY_STATS, DeploymentStats

WINDOW = timedelta(hours=24)


def _blend(parts: list[tuple[float, DeploymentStats]]) -> dict[str, Any]:
    """Traffic-weighted expectation of a revision from its deployments' stats."""
    total_w = sum(w for w, s in parts if s.calls) or 0.0
    if not total_w:
        return {"calls": 0, "cost_per_call": None, "error_rate": None, "latency_p95_ms": None}

    def mean(attr: str) -> float | None:
        values = [(w, getattr(s, attr)) for w, s in parts if s.calls and getattr(s, attr) is not None]
        weight = sum(w for w, _ in values)
        return sum(w * v for w, v in values) / weight if weight else None

    return {"calls": sum(s.calls for _, s in parts), "cost_per_call": mean("cost_per_call"),
            "error_rate": mean("error_rate"), "latency_p95_ms": mean("latency_p95_ms")}


def deployment_stats(route: Route) -> dict[str, DeploymentStats]:
    since = timezone.now() - WINDOW
    tenant = route.project.tenant_id
    by_version = queries.stats_by_model_version(tenant, route.name, route.environment, since)
    by_gateway = queries.stats_by_gateway_deployment(tenant, route.name, route.environment, since)
    out: dict[str, DeploymentStats] = {}
    for deployment in route.deployments.all():
        stats = by_gateway.get(deployment.gateway_id)
        if stats is None and deployment.model_version and deployment.model_version != route.name:
            stats = by_version.get(deployment.model_version)
        out[deployment.gateway_id] = stats or EMPTY_STATS
    return out


def impact(route: Route, current: RouteRevision | None, target: RouteRevision | None = None, *,
           weights: dict[str, float] | None = None) -> dict[str, Any]:
    """``{"window_hours", "deployments": {id: stats}, "current": blend, "target": blend}``."""
    stats = deployment_stats(route)
    target_weights = weights if weights is not None else (target.effective_weights() if target else {})
    current_weights = current.effective_weights() if current else {}
    return {
        "window_hours": int(WINDOW.total_seconds() // 3600),
        "deployments": {k: v.as_dict() for k, v in stats.items()},
        "current": {"revision": current.number if current else None, "weights": current_weights,
                    **_blend([(w, stats.get(k, EMPTY_STATS)) for k, w in current_weights.items()])},
        "target": {"revision": target.number if target else None, "weights": target_weights,
                   **_blend([(w, stats.get(k, EMPTY_STATS)) for k, w in target_weights.items()])},
    }
