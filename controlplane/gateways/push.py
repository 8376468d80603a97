"""Push a revision to every enabled push adapter of the project and record each call as a ``GatewaySync``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from controlplane.models import Action, GatewayAdapter, GatewaySync, Route, RouteRevision
from controlplane.models.routing import AdapterKind


@dataclass
class PushResult:
    adapter: GatewayAdapter
    ok: bool
    calls: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


def push_revision(route: Route, revision: RouteRevision, action: Action | None) -> list[PushResult]:
    from controlplane.gateways import litellm_admin, webhook

    previous = route.revisions.filter(is_active=True).first()
    results: list[PushResult] = []
    for adapter in GatewayAdapter.objects.filter(project=route.project, enabled=True):
        started = time.monotonic()
        if adapter.kind == AdapterKind.LITELLM_ADMIN:
            result = litellm_admin.push(adapter, route, revision, previous)
        else:
            result = webhook.push(adapter, route, revision, action)
        GatewaySync.objects.create(adapter=adapter, action=action, revision=revision, ok=result.ok,
                                   calls=result.calls, error=result.error[:4000],
                                   duration_ms=(time.monotonic() - started) * 1000)
        results.append(result)
    return results
