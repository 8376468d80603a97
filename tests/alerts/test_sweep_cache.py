"""The settled-rollup cache returns exactly what the full query returns (real chDB, spans rolled up by the views)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from anomaly import sweep
from anomaly.models import Alert, DetectorKind
from anomaly.rollups import Family, Grouping, SeriesMatrix, SettledCache, Window, load_series
from tests.alerts.traffic import at_minute, insert, spans

pytestmark = pytest.mark.django_db

END = 600
WIDTH = 480
BOTH = {Family.TRAFFIC, Family.LATENCY}


def _same(cached: SeriesMatrix, full: SeriesMatrix) -> None:
    assert cached.keys == full.keys
    assert cached.window == full.window
    np.testing.assert_array_equal(cached.total_calls, full.total_calls)
    assert cached.columns.keys() == full.columns.keys()
    for name, column in full.columns.items():
        np.testing.assert_array_equal(cached.columns[name], column, err_msg=name)


@pytest.fixture
def traffic(project, ch):  # type: ignore[no-untyped-def]
    """Two steady routes, one that stops early (slides out of the window) and a gap in another."""
    tenant = project.tenant_id
    insert(ch, spans(tenant, route="support", model="gpt-a", minutes=range(END + 30), seed=1,
                     latency_ms=lambda m: 800.0 + 3 * (m % 17)))
    insert(ch, spans(tenant, route="search", model="gpt-b", minutes=[m for m in range(END + 30) if m % 50 != 7],
                     service="search", seed=2, error_every=9))
    insert(ch, spans(tenant, route="old", model="gpt-a", minutes=range(110, 126), seed=3))
    return project


def _load(tenant: str, end: int, cache: SettledCache | None, families: set[Family] = BOTH,
          grouping: Grouping = Grouping.ROUTE_VERSION) -> SeriesMatrix:
    return load_series(tenant, grouping, Window.ending_now(WIDTH, at_minute(end)), families, cache)


def test_warm_loads_equal_the_full_query_as_the_window_slides(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    tenant = traffic.tenant_id
    cache = SettledCache(settle=timedelta(minutes=60))
    for grouping in (Grouping.ROUTE_VERSION, Grouping.SERVICE):
        _same(_load(tenant, END, cache, grouping=grouping), _load(tenant, END, None, grouping=grouping))
    assert (cache.hits, cache.misses) == (0, 2)

    # The same minute again, then one and then several minutes later: served from the cache, identical.
    for end in (END, END + 1, END + 2, END + 12):
        for grouping in (Grouping.ROUTE_VERSION, Grouping.SERVICE):
            _same(_load(tenant, end, cache, grouping=grouping), _load(tenant, end, None, grouping=grouping))
    assert (cache.hits, cache.misses) == (8, 2)
    # "old" (minutes 110-125) left the window at END + 6; the full query drops it and so does the cache.
    assert [k["route"] for k in _load(tenant, END + 12, cache).keys] == ["search", "support"]
    assert [k["route"] for k in _load(tenant, END, None).keys] == ["old", "search", "support"]

    # A new series appears in the recent minutes: the cache cannot know its older rows, so it goes cold.
    insert(ch, spans(tenant, route="fresh", model="gpt-c", minutes=range(END + 10, END + 14), seed=4))
    misses = cache.misses
    _same(_load(tenant, END + 14, cache), _load(tenant, END + 14, None))
    assert cache.misses == misses + 1
    assert "fresh" in [k["route"] for k in _load(tenant, END + 15, cache).keys]
    _same(_load(tenant, END + 15, cache), _load(tenant, END + 15, None))

    # Only the requested families come back, even though the cache keeps traffic for presence and totals.
    latency_only = _load(tenant, END + 16, cache, families={Family.LATENCY})
    _same(latency_only, _load(tenant, END + 16, None, families={Family.LATENCY}))
    assert "calls" not in latency_only.columns


def test_cache_goes_cold_for_an_earlier_window_after_ttl_and_over_budget(traffic) -> None:  # type: ignore[no-untyped-def]
    tenant = traffic.tenant_id
    cache = SettledCache(settle=timedelta(minutes=60), ttl=timedelta(0))
    _load(tenant, END, cache)
    _same(_load(tenant, END + 1, cache), _load(tenant, END + 1, None))
    assert cache.hits == 0  # TTL 0: every load is a full query (which also picks up late spans)

    cache = SettledCache(settle=timedelta(minutes=60))
    _load(tenant, END, cache)
    _same(_load(tenant, END - 5, cache), _load(tenant, END - 5, None))  # starts before the cached minutes
    assert cache.hits == 0

    tiny = SettledCache(settle=timedelta(minutes=60), max_bytes=1024)
    _load(tenant, END, tiny)
    _same(_load(tenant, END + 1, tiny), _load(tenant, END + 1, None))
    assert tiny.hits == 0  # an entry larger than the budget is never kept


def test_tenants_do_not_share_entries(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    from controlplane.models import Project

    other = Project.objects.create(slug="other-tenant", name="Other")
    insert(ch, spans(other.tenant_id, route="elsewhere", model="gpt-z", minutes=range(END), seed=9))
    cache = SettledCache(settle=timedelta(minutes=60))
    _load(traffic.tenant_id, END, cache)
    _load(other.tenant_id, END, cache)
    assert [k["route"] for k in _load(other.tenant_id, END + 1, cache).keys] == ["elsewhere"]
    assert [k["route"] for k in _load(traffic.tenant_id, END + 1, cache).keys] == ["old", "search", "support"]
    with pytest.raises(ValueError, match="tenant id is required"):
        load_series("", Grouping.ROUTE_VERSION, Window.ending_now(WIDTH, at_minute(END)), BOTH, cache)


def test_sweeps_with_and_without_the_cache_agree(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    """A latency step in the newest minutes raises the same alert whether the matrices came from the cache."""
    tenant = traffic.tenant_id
    insert(ch, spans(tenant, route="support", model="gpt-a", minutes=range(END + 30, END + 60), seed=5,
                     latency_ms=lambda _m: 2600.0))
    insert(ch, spans(tenant, route="search", model="gpt-b", minutes=range(END + 30, END + 60), service="search",
                     seed=6, error_every=9))
    cache = SettledCache(settle=timedelta(minutes=60))
    first = sweep.sweep_project(traffic, now=at_minute(END + 58), window_minutes=WIDTH, cache=cache)
    warm = sweep.sweep_project(traffic, now=at_minute(END + 59), window_minutes=WIDTH, cache=cache)
    assert cache.hits >= 2 and first.failures == warm.failures == []
    cold = sweep.sweep_project(traffic, now=at_minute(END + 59), window_minutes=WIDTH, cache=None)
    assert (warm.series, warm.open_episodes, warm.alerts_open) == (cold.series, cold.open_episodes, cold.alerts_open)
    latency = Alert.objects.filter(project=traffic, detector=DetectorKind.LATENCY_P95, route="support")
    assert latency.count() == 1


def test_joint_detector_raises_one_alert_for_a_joint_shift(project, ch) -> None:  # type: ignore[no-untyped-def]
    """Latency a little up while output tokens drop (a model started truncating): one multivariate alert."""
    from anomaly.models import DetectorConfig

    n, shift_at = 2 * 1440, 2 * 1440 - 40
    tenant = project.tenant_id
    insert(ch, spans(tenant, route="support", model="gpt-a", minutes=range(shift_at), seed=1))
    insert(ch, spans(tenant, route="support", model="gpt-a", minutes=range(shift_at, n + 2), seed=2,
                     latency_ms=lambda _m: 1000.0, output_tokens=(40, 50)))
    insert(ch, spans(tenant, route="search", model="gpt-b", minutes=range(n + 2), service="search", seed=3))
    sweep.configs_for(project)
    DetectorConfig.objects.filter(project=project).update(enabled=False)
    DetectorConfig.objects.filter(project=project, kind=DetectorKind.MULTIVARIATE).update(enabled=True)

    report = sweep.sweep_project(project, now=at_minute(n), window_minutes=n)
    assert report.failures == [] and report.detectors_run == 1
    joint = Alert.objects.filter(project=project, detector=DetectorKind.MULTIVARIATE)
    # One alert on the shifted route; its service ("checkout" serves only that route) shifts with it. The steady
    # route and its service raise nothing.
    keys = sorted((a.series_key["grouping"], a.series_key.get("route") or a.series_key.get("service")) for a in joint)
    assert keys == [("route_version", "support"), ("service", "checkout")]
    alert = joint.get(series_key__grouping="route_version")
    detection = alert.detections.get()
    assert detection.observed > detection.upper
    assert set(detection.details["moved_most"]) <= {"latency_p95", "tokens_per_call", "cost_per_call"}
    assert "tokens_per_call" in detection.details["moved_most"]

    # A minute later the hourly model is reused (not refitted) and the alert is refreshed, not duplicated.
    fitted = sweep._joint_models[tenant].fitted_at
    again = sweep.sweep_project(project, now=at_minute(n + 1), window_minutes=n)
    assert again.failures == [] and sweep._joint_models[tenant].fitted_at == fitted
    assert joint.count() == 2 and joint.filter(series_key__grouping="route_version").get().pk == alert.pk
