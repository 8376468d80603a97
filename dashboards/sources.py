"""Reads of other apps' Django models (alerts, actions, routes), for display only.

Writes always go through the owners' service functions (``anomaly.alerts``, ``controlplane.routing.services``).
When an owner's app is not installed in this build the pages show an honest empty state instead of failing.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from controlplane.models import Project


def optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def alert_model() -> Any:
    module = optional_module("anomaly.models")
    return getattr(module, "Alert", None) if module else None


def routing_models() -> ModuleType | None:
    return optional_module("controlplane.models.routing")


def open_alerts(project: Project, limit: int = 8) -> list[Any] | None:
    Alert = alert_model()
    if Alert is None:
        return None
    return list(Alert.objects.filter(project=project, state__in=["firing", "acknowledged"])
                .select_related("assignee").order_by("-opened_at")[:limit])


def latest_actions(project: Project, limit: int = 8) -> list[Any] | None:
    routing = routing_models()
    if routing is None or not hasattr(routing, "Action"):
        return None
    return list(routing.Action.objects.filter(project=project).select_related("route").order_by("-created_at")[:limit])
