"""Fixtures for routing tests: a route with two deployments, clients per role, and real rows in chDB."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest


@pytest.fixture
def route(project):  # type: ignore[no-untyped-def]
    from controlplane.routing import services

    actor = services.Actor("user:setup")
    route = services.declare_route(project, "chat-default", actor=actor)
    services.declare_deployment(route, "chat-default-v1", actor=actor, provider="openai", model="model-v1",
                                model_version="model-v1")
    services.declare_deployment(route, "chat-default-v2", actor=actor, provider="openai", model="model-v2",
                                model_version="model-v2")
    route.refresh_from_db()
    return route


def _client_for(project: Any, role: str, django_user_model: Any) -> Any:
    from rest_framework.test import APIClient

    from controlplane.models import Membership

    user = django_user_model.objects.create_user(username=f"{role}-{uuid.uuid4().hex[:6]}", password="pw-123456789")
    Membership.objects.create(user=user, project=project, role=role)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def operator_client(project, django_user_model):  # type: ignore[no-untyped-def]
    return _client_for(project, "operator", django_user_model)


@pytest.fixture
def viewer_client(project, django_user_model):  # type: ignore[no-untyped-def]
    return _client_for(project, "viewer", django_user_model)


CALL_COLUMNS = ["ProjectId", "Timestamp", "TraceId", "SpanId", "ServiceName", "Environment", "Route", "Provider",
                "RequestModel", "ResponseModel", "Operation", "SpanName", "StatusCode", "IsError", "DurationMs",
                "InputTokens", "OutputTokens", "TotalCost", "Priced", "CostSource", "GatewayDeploymentId"]


@pytest.fixture
def insert_calls(ch) -> Callable[..., None]:  # type: ignore[no-untyped-def]
    """Insert typed rows into llm_calls (the rollup MVs fire on insert)."""

    def insert(tenant: str, *, route: str = "chat-default", deployment: str = "chat-default-v1",
               model: str = "model-v1", n: int = 10, latency_ms: float = 100.0, errors: int = 0, cost: float = 0.001,
               at: datetime | None = None) -> None:
        ts = at or datetime.now(UTC)
        rows = [
            [tenant, ts, uuid.uuid4().hex, uuid.uuid4().hex[:16], "app", "", route, "openai", model, model, "chat",
             "chat", "Ok" if i >= errors else "Error", 1 if i < errors else 0, latency_ms, 10, 5, cost, 1, "client",
             deployment]
            for i in range(n)
        ]
        ch.insert("llm_calls", rows, column_names=CALL_COLUMNS)

    return insert
