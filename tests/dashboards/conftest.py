from __future__ import annotations

import pytest

from tests.dashboards.traffic import ensure_prices, write_traffic


@pytest.fixture
def traffic_project(project, ch):  # type: ignore[no-untyped-def]
    """A project with two hours of traffic on three models and two routes."""
    ensure_prices(ch)
    write_traffic(ch, project.tenant_id)
    return project


@pytest.fixture
def member(django_user_model, project):  # type: ignore[no-untyped-def]
    """``member(role)`` -> a logged-in-able user with that role on ``project``."""
    from controlplane.models import Membership

    def make(role: str, name: str | None = None):  # type: ignore[no-untyped-def]
        user = django_user_model.objects.create_user(name or f"{role}-user", password="pw-long-enough-1")
        Membership.objects.create(user=user, project=project, role=role)
        return user

    return make


def make_route(project, name: str = "chat", environment: str = "prod"):  # type: ignore[no-untyped-def]
    """A route with two deployments and two revisions (r1 all on small, r2 all on large)."""
    from controlplane.routing import services

    actor = services.Actor("user:setup")
    route = services.declare_route(project, name, environment, actor=actor)
    services.declare_deployment(route, "small-1", actor=actor, provider="openai", model="dash-small",
                                model_version="dash-small-2024-07-18")
    services.declare_deployment(route, "large-1", actor=actor, provider="openai", model="dash-large",
                                model_version="dash-large-2024-08-06")
    route.refresh_from_db()
    services.reroute(route, actor, "canary done", weights={"large-1": 100.0})
    route.refresh_from_db()
    return route


@pytest.fixture
def route(traffic_project):  # type: ignore[no-untyped-def]
    return make_route(traffic_project)
