"""Drift and canary jobs over samples of real ``llm_calls`` rows in chDB."""

from __future__ import annotations

import importlib

import pytest

from django.apps import apps as django_apps

from anomaly import alerts, drift_jobs
from anomaly.models import Alert, AlertState, DetectorKind
from tests.alerts.helpers import observation
from tests.alerts.traffic import at_minute, insert, spans

pytestmark = pytest.mark.django_db

END = 25 * 60  # 25 hours of minutes


# Traffic without a deployment.environment (environment "") and prod-only traffic raise the same alerts, keyed by
# their environment.
@pytest.mark.parametrize("environment", ["", "prod"])
def test_canary_with_longer_outputs_raises_one_alert_with_test_statistics(project, ch, environment) -> None:  # type: ignore[no-untyped-def]
    tenant = project.tenant_id
    env = {"environment": environment}
    insert(ch, spans(tenant, route="chat", model="v1", minutes=range(END - 60), calls_per_minute=2, seed=1, **env))
    insert(ch, spans(tenant, route="chat", model="v2", minutes=range(END - 60, END), calls_per_minute=2, seed=2,
                     output_tokens=(170, 200), **env))
    insert(ch, spans(tenant, route="steady", model="s1", minutes=range(END), calls_per_minute=2, seed=3,
                     service="steady", **env))
    findings = drift_jobs.run_drift(project, now=at_minute(END))
    canary = [f for f in findings if f.kind == DetectorKind.CANARY]
    assert {f.result.feature for f in canary} == {"output_tokens"}
    key = {"environment": environment, "route": "chat", "model_version": "v2", "previous_version": "v1",
           "grouping": "canary"}
    assert canary[0].series_key == key
    assert not [f for f in findings if f.series_key["route"] == "steady"]

    alert = Alert.objects.get(project=project, detector=DetectorKind.CANARY)
    assert alert.state == AlertState.FIRING and "v2 vs v1" in alert.title
    assert alert.series_key == key and alert.fingerprint == alerts.fingerprint(project, DetectorKind.CANARY, key)
    assert (f"in {environment}" in alert.title) == bool(environment)
    detection = alert.detections.get()
    assert detection.method == "ks" and detection.p_value < 1e-6 and detection.statistic > 0.5
    assert detection.details["features"][0]["psi"] > 0.25
    assert detection.details["features"][0]["n_current"] == 120

    drift_jobs.run_drift(project, now=at_minute(END))  # a re-run changes nothing
    assert Alert.objects.filter(project=project, detector=DetectorKind.CANARY).count() == 1


@pytest.mark.parametrize("environment", ["", "prod"])
def test_window_drift_on_a_route_and_recovery(project, ch, environment) -> None:  # type: ignore[no-untyped-def]
    tenant = project.tenant_id
    env = {"environment": environment}
    insert(ch, spans(tenant, route="chat", model="v1", minutes=range(END - 60), calls_per_minute=2, seed=4, **env))
    insert(ch, spans(tenant, route="chat", model="v1", minutes=range(END - 60, END), calls_per_minute=2, seed=5,
                     output_tokens=(10, 30), **env))
    findings = drift_jobs.run_drift(project, now=at_minute(END))
    assert [(f.kind, f.result.feature) for f in findings] == [(DetectorKind.DRIFT, "output_tokens")]
    alert = Alert.objects.get(project=project, detector=DetectorKind.DRIFT)
    # The window-drift series is the sweep's route × version series, environment included.
    assert alert.series_key == {"environment": environment, "route": "chat", "model_version": "v1",
                                "grouping": "route_version"}
    assert alert.detections.get().details["environment"] == environment
    # Two hours later the short answers are the reference and the current hour looks like it: resolved.
    insert(ch, spans(tenant, route="chat", model="v1", minutes=range(END, END + 120), calls_per_minute=2, seed=6,
                     output_tokens=(10, 30), **env))
    assert drift_jobs.run_drift(project, now=at_minute(END + 120), reference=drift_jobs.timedelta(hours=1)) == []
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED


def test_no_calls_and_too_few_calls_are_quiet(project, ch) -> None:  # type: ignore[no-untyped-def]
    assert drift_jobs.run_drift(project, now=at_minute(END)) == []
    insert(ch, spans(project.tenant_id, route="tiny", model="m", minutes=range(END - 65, END), calls_per_minute=0))
    insert(ch, spans(project.tenant_id, route="tiny", model="m", minutes=range(END - 70, END - 60, 5),
                     calls_per_minute=1))
    assert drift_jobs.run_drift(project, now=at_minute(END)) == []
    assert not Alert.objects.filter(project=project).exists()


def test_a_version_change_only_in_staging_is_a_staging_canary_against_stagings_previous_version(project, ch) -> None:  # type: ignore[no-untyped-def]
    tenant = project.tenant_id
    # Prod serves the route with v0 all along (busier than staging); staging moved from v1 to v2 an hour ago and
    # v2 writes longer answers. Prod's v0 answers like staging's v1, so only a like-with-like comparison is right.
    insert(ch, spans(tenant, route="chat", model="v0", minutes=range(END), calls_per_minute=2, seed=7,
                     environment="prod"))
    insert(ch, spans(tenant, route="chat", model="v1", minutes=range(END - 60), calls_per_minute=1, seed=8,
                     environment="staging"))
    insert(ch, spans(tenant, route="chat", model="v2", minutes=range(END - 60, END), calls_per_minute=2, seed=9,
                     output_tokens=(170, 200), environment="staging"))
    findings = drift_jobs.run_drift(project, now=at_minute(END))
    assert {(f.kind, f.series_key["environment"], f.result.feature) for f in findings} == {
        (DetectorKind.CANARY, "staging", "output_tokens")}
    canary = findings[0]
    assert canary.series_key == {"environment": "staging", "route": "chat", "model_version": "v2",
                                 "previous_version": "v1", "grouping": "canary"}
    assert canary.result.n_reference == 24 * 60  # staging's v1 calls only, none of prod's v0
    alert = Alert.objects.get(project=project)
    assert alert.detector == DetectorKind.CANARY and alert.series_key["environment"] == "staging"
    assert "v2 vs v1 in staging" in alert.title
    assert not Alert.objects.filter(project=project, series_key__environment="prod").exists()
    # The incident is staging's: a prod alert on the same route would not join it.
    assert alerts.group_key(project, {**alert.series_key, "environment": "prod"}) != alert.group_key


def test_drift_alerts_stored_without_environment_are_migrated_or_resolved(project, ch) -> None:  # type: ignore[no-untyped-def]
    # A drift alert as the environment-less drift jobs stored it after migration 0002 had run.
    old_key = {"route": "chat", "model_version": "gpt-a", "grouping": "route_version"}
    stale = alerts.observe(observation(project, detector="drift", route="chat"), now=at_minute(END - 5))
    assert stale is not None and stale.series_key == old_key
    migration = importlib.import_module("anomaly.migrations.0003_drift_keys_environment")
    migration.add_environment(django_apps, None)
    stale.refresh_from_db()
    assert stale.series_key == {**old_key, "environment": ""}
    assert stale.fingerprint == alerts.fingerprint(project, "drift", stale.series_key)
    assert stale.detections.get().series_key == stale.series_key
    migration.add_environment(django_apps, None)  # idempotent
    stale.refresh_from_db()
    assert stale.fingerprint == alerts.fingerprint(project, "drift", {**old_key, "environment": ""})

    # The route's traffic carries an environment now: prod's own drift alert joins the stale one's incident and the
    # environment-less alert, whose series is no longer compared, resolves.
    tenant = project.tenant_id
    insert(ch, spans(tenant, route="chat", model="gpt-a", minutes=range(END - 60), calls_per_minute=2, seed=10,
                     environment="prod"))
    insert(ch, spans(tenant, route="chat", model="gpt-a", minutes=range(END - 60, END), calls_per_minute=2, seed=11,
                     output_tokens=(10, 30), environment="prod"))
    drift_jobs.run_drift(project, now=at_minute(END))
    stale.refresh_from_db()
    assert stale.state == AlertState.RESOLVED
    assert stale.transitions.filter(reason__contains="split by environment").exists()
    prod = Alert.objects.get(project=project, detector=DetectorKind.DRIFT, series_key__environment="prod")
    assert prod.state == AlertState.FIRING and prod.incident_id == stale.pk
