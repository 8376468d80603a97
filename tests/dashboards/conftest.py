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
