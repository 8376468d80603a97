"""Drift and canary jobs over samples of real ``llm_calls`` rows in chDB."""

from __future__ import annotations

import pytest

from anomaly import drift_jobs
from anomaly.models import Alert, AlertState, DetectorKind
from tests.alerts.traffic import at_minute, insert, spans

pytestmark = pytest.mark.django_db

END = 25 * 60  # 25 hours of minutes


def test_canary_with_longer_outputs_raises_one_alert_with_test_statistics(project, ch) -> None:  # type: ignore[no-untyped-def]
    tenant = project.tenant_id
    insert(ch, spans(tenant, route="chat", model="v1", minutes=range(END - 60), calls_per_minute=2, seed=1))
    insert(ch, spans(tenant, route="chat", model="v2", minutes=range(END - 60, END), calls_per_minute=2, seed=2,
                     output_tokens=(170, 200)))
    insert(ch, spans(tenant, route="steady", model="s1", minutes=range(END), calls_per_minute=2, seed=3,
                     service="steady"))
    findings = drift_jobs.run_drift(project, now=at_minute(END))
    canary = [f for f in findings if f.kind == DetectorKind.CANARY]
    assert {f.result.feature for f in canary} == {"output_tokens"}
    assert canary[0].series_key["model_version"] == "v2" and canary[0].series_key["previous_version"] == "v1"
    assert not [f for f in findings if f.series_key["route"] == "steady"]

    alert = Alert.objects.get(project=project, detector=DetectorKind.CANARY)
    assert alert.state == AlertState.FIRING and "v2 vs v1" in alert.title
    detection = alert.detections.get()
    assert detection.method == "ks" and detection.p_value < 1e-6 and detection.statistic > 0.5
    assert detection.details["features"][0]["psi"] > 0.25
    assert detection.details["features"][0]["n_current"] == 120

    drift_jobs.run_drift(project, now=at_minute(END))  # a re-run changes nothing
    assert Alert.objects.filter(project=project, detector=DetectorKind.CANARY).count() == 1


def test_window_drift_on_a_route_and_recovery(project, ch) -> None:  # type: ignore[no-untyped-def]
    tenant = project.tenant_id
    insert(ch, spans(tenant, route="chat", model="v1", minutes=range(END - 60), calls_per_minute=2, seed=4))
    insert(ch, spans(tenant, route="chat", model="v1", minutes=range(END - 60, END), calls_per_minute=2, seed=5,
                     output_tokens=(10, 30)))
    findings = drift_jobs.run_drift(project, now=at_minute(END))
    assert [(f.kind, f.result.feature) for f in findings] == [(DetectorKind.DRIFT, "output_tokens")]
    alert = Alert.objects.get(project=project, detector=DetectorKind.DRIFT)
    # Two hours later the short answers are the reference and the current hour looks like it: resolved.
    insert(ch, spans(tenant, route="chat", model="v1", minutes=range(END, END + 120), calls_per_minute=2, seed=6,
                     output_tokens=(10, 30)))
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
