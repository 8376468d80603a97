"""Environment is part of every series key: prod and staging traffic of one route are never mixed."""

from __future__ import annotations

import importlib

import pytest

from django.apps import apps as django_apps

from anomaly import alerts, sweep
from anomaly.models import Alert, AlertState, DetectorKind
from anomaly.rollups import Family, Grouping, Window, load_series
from tests.alerts.helpers import observation
from tests.alerts.traffic import at_minute, insert, spans

pytestmark = pytest.mark.django_db

N = 2 * 1440
STEP_AT = N - 30


@pytest.fixture
def two_environments(project, ch):  # type: ignore[no-untyped-def]
    """One route in prod and staging; only staging's last 30 minutes are three times slower."""
    insert(ch, spans(project.tenant_id, route="support", model="gpt-a", minutes=range(N), environment="prod", seed=1))
    insert(ch, spans(project.tenant_id, route="support", model="gpt-a", minutes=range(N), environment="staging",
                     latency_ms=lambda m: 2400.0 if m >= STEP_AT else 800.0, seed=2))
    return project


def test_series_are_split_by_environment(two_environments) -> None:  # type: ignore[no-untyped-def]
    window = Window.ending_now(N, at_minute(N))
    for grouping, expected in ((Grouping.ROUTE_VERSION, {"route": "support", "model_version": "gpt-a"}),
                               (Grouping.SERVICE, {"service": "checkout"})):
        matrix = load_series(two_environments.tenant_id, grouping, window, {Family.TRAFFIC, Family.LATENCY})
        assert matrix.keys == [{"environment": "prod", **expected}, {"environment": "staging", **expected}]
        assert matrix.columns["calls"][0].sum() == matrix.columns["calls"][1].sum() == 4 * N
        assert matrix.columns["latency_p95"][0, -1] < 1000 < matrix.columns["latency_p95"][1, -1]


def test_a_staging_regression_does_not_touch_prod(two_environments) -> None:  # type: ignore[no-untyped-def]
    report = sweep.sweep_project(two_environments, now=at_minute(N))
    assert report.failures == [] and report.series["route_version"] == 2 and report.series["service"] == 2
    latency = Alert.objects.filter(project=two_environments, detector=DetectorKind.LATENCY_P95)
    assert {a.series_key["environment"] for a in latency} == {"staging"}
    alert = latency.get(series_key__grouping="route_version")
    assert "environment=staging" in alert.title
    assert not Alert.objects.filter(project=two_environments, series_key__environment="prod").exists()
    # The incident is per environment: a prod alert on the same route would not join staging's group.
    prod_key = {**alert.series_key, "environment": "prod"}
    assert alerts.group_key(two_environments, prod_key) != alert.group_key


def test_alerts_from_before_the_split_are_migrated_or_resolved(two_environments) -> None:  # type: ignore[no-untyped-def]
    # Alerts stored with the old series key (no environment), as 0001-era sweeps left them.
    old_key = {"route": "support", "model_version": "gpt-a", "grouping": "route_version"}
    stale = alerts.observe(observation(two_environments, detector="latency_p95", route="support"),
                           now=at_minute(N - 5))
    assert stale is not None and stale.series_key == old_key
    quiet = alerts.observe(observation(two_environments, detector="error_rate", route="other"), now=at_minute(N - 5))
    assert quiet is not None

    migration = importlib.import_module("anomaly.migrations.0002_error_type_kind_and_environment_keys")
    migration.add_environment(django_apps, None)
    stale.refresh_from_db()
    assert stale.series_key == {**old_key, "environment": ""}
    assert stale.fingerprint == alerts.fingerprint(two_environments, "latency_p95", stale.series_key)

    # Real traffic of that route carries environments now: the old series is not watched any more and resolves;
    # staging's own alert joins its incident instead of paging a second time.
    report = sweep.sweep_project(two_environments, now=at_minute(N))
    assert report.failures == []
    stale.refresh_from_db()
    assert stale.state == AlertState.RESOLVED
    assert stale.transitions.filter(reason__contains="no longer watched").exists()
    quiet.refresh_from_db()
    assert quiet.state == AlertState.RESOLVED  # a route with no traffic in the window is no longer watched either
    staging = Alert.objects.get(project=two_environments, detector="latency_p95", series_key__grouping="route_version",
                                series_key__environment="staging")
    assert staging.state == AlertState.FIRING and staging.incident_id == stale.pk
