"""Model-version timeline per route: share of traffic per response model per hour, with revision markers."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from controlplane.models import Action, Route
from controlplane.models.routing import ActionState
from controlplane.routing import queries


def timeline(route: Route, since: datetime, until: datetime) -> dict[str, Any]:
    rows = queries.traffic_share_by_hour(route.project.tenant_id, route.name, route.environment, since, until)
    totals: dict[datetime, int] = defaultdict(int)
    for hour, _model, calls in rows:
        totals[hour] += calls
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hour, model, calls in rows:
        series[model or "(unknown)"].append({"hour": hour.isoformat(), "calls": calls,
                                             "share": calls / totals[hour] if totals[hour] else 0.0})
    markers = [
        {"at": a.applied_at.isoformat() if a.applied_at else a.created_at.isoformat(), "action_id": a.pk,
         "kind": a.kind, "actor": a.actor, "state": a.state,
         "from_revision": a.before_revision.number if a.before_revision else None,
         "to_revision": a.after_revision.number if a.after_revision else None}
        for a in Action.objects.filter(route=route, created_at__gte=since, created_at__lte=until,
                                       state__in=[ActionState.APPLIED, ActionState.REVERTED])
        .select_related("before_revision", "after_revision").order_by("created_at")
    ]
    return {"route": str(route), "since": since.isoformat(), "until": until.isoformat(),
            "series": dict(series), "markers": markers}
