"""The periodic sweep on real rollups (spans inserted the Collector way into chDB, rolled up by the views)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from anomaly import alerts, sweep
from anomaly.models import Alert, AlertState, AlertTransition, DetectorConfig, DetectorKind
from anomaly.rollups import Family, Grouping, Window, load_series
from tests.alerts.traffic import at_minute, insert, spans

pytestmark = pytest.mark.django_db

DAYS = 2
N = DAYS * 1440
STEP_AT = N - 30


def _step(minute: int) -> float:
    return 2400.0 if STEP_AT <= minute < N else 800.0


@pytest.fixture
def stepped(project, ch):  # type: ignore[no-untyped-def]
    """Two days of two routes; the last 30 minutes of support/gpt-a are three times slower."""
    insert(ch, spans(project.tenant_id, route="support", model="gpt-a", minutes=range(N), latency_ms=_step, seed=1))
    insert(ch, spans(project.tenant_id, route="search", model="gpt-b", minutes=range(N), service="search", seed=2))
    return project


def _latency_alerts(project):  # type: ignore[no-untyped-def]
    return Alert.objects.filter(project=project, detector=DetectorKind.LATENCY_P95, route="support",
                                series_key__grouping="route_version")


def test_rollup_query_returns_every_series_on_one_grid(stepped) -> None:  # type: ignore[no-untyped-def]
    window = Window.ending_now(N, at_minute(N))
    matrix = load_series(stepped.tenant_id, Grouping.ROUTE_VERSION, window, {Family.TRAFFIC, Family.LATENCY})
    assert sorted((k["route"], k["model_version"]) for k in matrix.keys) == [("search", "gpt-b"), ("support", "gpt-a")]
    row = [k["route"] for k in matrix.keys].index("support")
    assert matrix.columns["calls"].shape == (2, N)
    assert np.nansum(matrix.columns["calls"][row]) == 4 * N
    assert matrix.columns["latency_p95"][row, 100] == pytest.approx(800 * 1.1, rel=0.15)
    assert matrix.columns["latency_p95"][row, N - 1] == pytest.approx(2400 * 1.1, rel=0.15)


def test_step_raises_one_alert_dedups_and_auto_resolves(stepped, ch) -> None:  # type: ignore[no-untyped-def]
    report = sweep.sweep_project(stepped, now=at_minute(N))
    assert report.failures == []
    assert report.series == {"route_version": 2, "service": 2, "error_types": 0}
    found = _latency_alerts(stepped)
    assert found.count() == 1
    alert = found.get()
    assert alert.state == AlertState.FIRING
    assert alert.series_key == {"environment": "", "route": "support", "model_version": "gpt-a",
                                "grouping": "route_version"}
    detection = alert.detections.get()
    assert detection.observed > detection.upper > detection.expected
    assert detection.expected == pytest.approx(880, rel=0.25)
    assert detection.window_start >= at_minute(STEP_AT - 2)
    assert detection.points and detection.points[-1][1] == pytest.approx(detection.observed, rel=0.5)
    # Everything else that fired for the same incident is grouped under the one paging alert.
    leaders = Alert.objects.filter(project=stepped, incident__isnull=True)
    assert list(leaders) == [alert]
    assert not Alert.objects.filter(project=stepped, route="search").exists()

    transitions = AlertTransition.objects.filter(alert__project=stepped).count()
    for _ in range(2):
        again = sweep.sweep_project(stepped, now=at_minute(N))
        assert again.failures == []
    assert _latency_alerts(stepped).count() == 1
    assert AlertTransition.objects.filter(alert__project=stepped).count() == transitions

    # Recovery: two good minutes are not enough (hysteresis, and the level-shift statistic has to drain); an hour is.
    insert(ch, spans(stepped.tenant_id, route="support", model="gpt-a", minutes=range(N, N + 2), seed=3))
    sweep.sweep_project(stepped, now=at_minute(N + 2))
    assert _latency_alerts(stepped).get().state == AlertState.FIRING
    insert(ch, spans(stepped.tenant_id, route="support", model="gpt-a", minutes=range(N + 2, N + 60), seed=4))
    sweep.sweep_project(stepped, now=at_minute(N + 60))
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    assert alert.resolved_at == at_minute(N + 60)
    last = alert.transitions.last()
    assert (last.action, last.from_state, last.to_state, last.actor) == ("resolved", "firing", "resolved", None)
    assert last.reason.startswith("auto:")


def test_bad_series_raise_nothing(project, ch) -> None:  # type: ignore[no-untyped-def]
    tenant = project.tenant_id
    # constant latency, one single call, a route created a minute ago, an unpriced model (cost NaN / 0)
    insert(ch, spans(tenant, route="constant", model="m", minutes=range(600), latency_ms=lambda _m: 500.0,
                       service="constant"))
    insert(ch, spans(tenant, route="single", model="m", minutes=range(300, 301), calls_per_minute=1,
                       service="single"))
    insert(ch, spans(tenant, route="brand-new", model="m", minutes=range(598, 600), calls_per_minute=3,
                       service="brand-new"))
    report = sweep.sweep_project(project, now=at_minute(600))
    assert report.failures == []
    assert report.series["route_version"] == 3
    assert not Alert.objects.filter(project=project).exists()


def test_empty_project_sweeps_cleanly(project) -> None:  # type: ignore[no-untyped-def]
    report = sweep.sweep_project(project, now=at_minute(10))
    assert report.failures == [] and report.series == {"route_version": 0, "service": 0, "error_types": 0}


def test_failing_detector_is_logged_and_others_continue(stepped, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    spec = sweep.SPECS[DetectorKind.ERROR_RATE]

    def explode(_columns):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("broken metric")

    monkeypatch.setitem(sweep.SPECS, DetectorKind.ERROR_RATE, sweep.MetricSpec(
        spec.kind, spec.metric, spec.families, explode, spec.label))
    with caplog.at_level(logging.ERROR, logger="anomaly.sweep"):
        report = sweep.sweep_project(stepped, now=at_minute(N))
    assert any("error_rate" in f and "broken metric" in f for f in report.failures)
    assert "detector error_rate failed" in caplog.text
    assert _latency_alerts(stepped).count() == 1


def test_disabled_detector_and_min_calls_are_respected(stepped) -> None:  # type: ignore[no-untyped-def]
    sweep.configs_for(stepped)
    DetectorConfig.objects.filter(project=stepped, kind=DetectorKind.LATENCY_P95).update(min_calls=10**9)
    sweep.sweep_project(stepped, now=at_minute(N))
    assert not _latency_alerts(stepped).exists()
    DetectorConfig.objects.filter(project=stepped, kind=DetectorKind.LATENCY_P95).update(min_calls=0, enabled=False)
    sweep.sweep_project(stepped, now=at_minute(N))
    assert not _latency_alerts(stepped).exists()


def test_fingerprint_is_per_detector_and_series(project) -> None:  # type: ignore[no-untyped-def]
    a = alerts.fingerprint(project, "latency_p95", {"route": "r", "model_version": "v"})
    assert a == alerts.fingerprint(project, "latency_p95", {"model_version": "v", "route": "r"})
    assert a != alerts.fingerprint(project, "error_rate", {"route": "r", "model_version": "v"})
    assert a != alerts.fingerprint(project, "latency_p95", {"route": "r", "model_version": "w"})
