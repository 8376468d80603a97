"""Error rate by error type on real rollups: one series per series × frequent error type, one page per burst."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly import alerts, sweep
from anomaly.models import Alert, AlertState, DetectorKind
from anomaly.rollups import TOP_ERROR_TYPES, Family, Grouping, Window, load_series
from tests.alerts.traffic import at_minute, insert, spans

pytestmark = pytest.mark.django_db

DAYS = 2
N = DAYS * 1440
BURST_AT = N - 20
CALLS = 6


def _support_errors(minute: int, k: int) -> str | None:
    """A sparse background of timeouts; for the last 20 minutes half the calls are rate-limited."""
    if minute >= BURST_AT and k % 2 == 0:
        return "RateLimitError"
    return "timeout" if (minute * CALLS + k) % 211 == 0 else None


@pytest.fixture
def burst(project, ch):  # type: ignore[no-untyped-def]
    insert(ch, spans(project.tenant_id, route="support", model="gpt-a", minutes=range(N), calls_per_minute=CALLS,
                     errors=_support_errors, seed=1))
    insert(ch, spans(project.tenant_id, route="search", model="gpt-b", minutes=range(N), service="search", seed=2,
                     errors=lambda m, k: "timeout" if (m * 4 + k) % 173 == 0 else None))
    return project


def test_error_type_series_divide_by_their_series_calls(burst) -> None:  # type: ignore[no-untyped-def]
    window = Window.ending_now(N, at_minute(N))
    types = load_series(burst.tenant_id, Grouping.ROUTE_VERSION_ERRORS, window, {Family.ERROR_TYPES})
    assert sorted((k["route"], k["error_type"]) for k in types.keys) == [
        ("search", "timeout"), ("support", "RateLimitError"), ("support", "timeout")]
    row = next(i for i, k in enumerate(types.keys) if k["error_type"] == "RateLimitError")
    counts = types.columns["type_errors"][row]
    assert np.nansum(counts) == 20 * CALLS // 2
    assert np.isnan(counts[: BURST_AT]).all()  # sparse: no row where the type did not occur


def test_burst_of_one_type_is_one_page_with_per_type_evidence(burst) -> None:  # type: ignore[no-untyped-def]
    report = sweep.sweep_project(burst, now=at_minute(N))
    assert report.failures == []
    assert report.series["error_types"] == 3 + 3  # the same (series, type) pairs per route × version and service
    by_type = Alert.objects.filter(project=burst, detector=DetectorKind.ERROR_RATE_BY_TYPE,
                                   series_key__grouping="route_version")
    assert [a.series_key for a in by_type] == [{"environment": "", "route": "support", "model_version": "gpt-a",
                                                "error_type": "RateLimitError", "grouping": "route_version"}]
    typed = by_type.get()
    overall = Alert.objects.get(project=burst, detector=DetectorKind.ERROR_RATE, series_key__grouping="route_version")
    assert typed.fingerprint != overall.fingerprint
    assert typed.fingerprint == alerts.fingerprint(burst, DetectorKind.ERROR_RATE_BY_TYPE, typed.series_key)
    assert "RateLimitError" in typed.title and typed.group_key == overall.group_key
    detection = typed.detections.get()
    assert detection.metric == "error_rate:RateLimitError" and detection.details["error_type"] == "RateLimitError"
    assert detection.observed == pytest.approx(0.5, abs=0.2) and detection.observed > detection.upper
    assert detection.expected < 0.05 and detection.points
    # The overall rate, the error type, the service views: one incident, one page.
    leaders = Alert.objects.filter(project=burst, incident__isnull=True)
    assert leaders.count() == 1
    assert Alert.objects.filter(project=burst, state=AlertState.FIRING).count() >= 2
    assert not Alert.objects.filter(project=burst, route="search").exists()
    # The background timeouts never page.
    assert not Alert.objects.filter(project=burst, series_key__error_type="timeout").exists()
    # Re-running the sweep dedups per error type.
    again = sweep.sweep_project(burst, now=at_minute(N))
    assert again.failures == [] and by_type.count() == 1


def test_error_types_per_series_are_bounded(project, ch) -> None:  # type: ignore[no-untyped-def]
    many = [f"E{i}" for i in range(TOP_ERROR_TYPES + 3)]
    # E0 is the most frequent, E7 the rarest (each type on a different share of minutes).
    insert(ch, spans(project.tenant_id, route="r", model="m", minutes=range(240), calls_per_minute=len(many),
                     errors=lambda m, k: many[k] if m % (k + 1) == 0 else None))
    window = Window.ending_now(240, at_minute(240))
    types = load_series(project.tenant_id, Grouping.ROUTE_VERSION_ERRORS, window, {Family.ERROR_TYPES})
    assert sorted(k["error_type"] for k in types.keys) == many[:TOP_ERROR_TYPES]
    report = sweep.sweep_project(project, now=at_minute(240), window_minutes=240)
    assert report.failures == [] and report.series["error_types"] == 2 * TOP_ERROR_TYPES


def test_sparse_error_types_on_a_quiet_series_raise_nothing(project, ch) -> None:  # type: ignore[no-untyped-def]
    # A handful of calls, a single error now and then: zero-inflated and under the volume guard.
    insert(ch, spans(project.tenant_id, route="quiet", model="m", minutes=range(0, 600, 7), calls_per_minute=1,
                     errors=lambda m, _k: "timeout" if m % 49 == 0 else None))
    report = sweep.sweep_project(project, now=at_minute(600), window_minutes=600)
    assert report.failures == []
    assert not Alert.objects.filter(project=project, detector=DetectorKind.ERROR_RATE_BY_TYPE).exists()
