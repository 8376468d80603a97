"""Settled minutes finalised into ``series_1m``: the sweep's matrices are the same as re-aggregating the rollups.

Real chDB, spans rolled up by the views; late spans inside and beyond the settle horizon.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from anomaly import finalised, sweep
from anomaly.finalised import FINALISE_EVERY, finalise_settled, finalised_end
from anomaly.rollups import Family, Grouping, SeriesMatrix, SettledCache, Window, load_series
from tests.alerts.traffic import at_minute, insert, spans

pytestmark = pytest.mark.django_db

END = 600  # the window ends at 10:00; settled (2 h horizon) and finalised up to 08:00
WIDTH = 480  # from 02:00
BOTH = {Family.TRAFFIC, Family.LATENCY}
FAMILIES = {Grouping.ROUTE_VERSION: BOTH, Grouping.SERVICE: BOTH,
            Grouping.ROUTE_VERSION_ERRORS: {Family.ERROR_TYPES}, Grouping.SERVICE_ERRORS: {Family.ERROR_TYPES}}


def _error_types(minute: int, k: int) -> str | None:
    if k == 0 and minute % 7 == 0:
        return "RateLimitError"
    return "Timeout" if k == 1 and minute % 11 == 0 else None


@pytest.fixture
def traffic(project, ch):  # type: ignore[no-untyped-def]
    """Two routes on two services with two error types, a route that stops early and one with gaps."""
    tenant = project.tenant_id
    insert(ch, spans(tenant, route="support", model="gpt-a", minutes=range(END + 30), seed=1,
                     latency_ms=lambda m: 800.0 + 3 * (m % 17), errors=_error_types))
    insert(ch, spans(tenant, route="search", model="gpt-b", minutes=[m for m in range(END + 30) if m % 50 != 7],
                     service="search", seed=2, error_every=9))
    insert(ch, spans(tenant, route="old", model="gpt-a", minutes=range(110, 126), seed=3))
    finalised._checked.pop(tenant, None)
    return project


def _window(end: int = END) -> Window:
    return Window.ending_now(WIDTH, at_minute(end))


def _same(mine: SeriesMatrix, full: SeriesMatrix) -> None:
    assert mine.keys == full.keys and mine.keys
    np.testing.assert_array_equal(mine.total_calls, full.total_calls)
    assert mine.columns.keys() == full.columns.keys()
    for name, column in full.columns.items():
        np.testing.assert_array_equal(mine.columns[name], column, err_msg=name)


def _all_same(tenant: str, window: Window, settled_until: datetime) -> None:
    for grouping, families in FAMILIES.items():
        _same(load_series(tenant, grouping, window, families, settled_until=settled_until),
              load_series(tenant, grouping, window, families))


def _rows(ch, tenant: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    query = "SELECT count() FROM series_1m {final} WHERE ProjectId = {{tenant:String}}"
    return tuple(ch.query(query.format(final=f), parameters={"tenant": tenant}).result_rows[0][0]  # type: ignore[return-value]
                 for f in ("", "FINAL"))


def test_finalised_minutes_give_the_matrices_of_the_full_rollup_query(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    tenant = traffic.tenant_id
    window = _window()
    done = finalise_settled(tenant, window)
    assert done.through == at_minute(480) == finalised_end(window)
    assert done.minutes == 360 and done.late_from is None  # 02:00-08:00, every minute had calls
    rows, final_rows = _rows(ch, tenant)
    assert rows == final_rows > 360 * 2
    _all_same(tenant, window, done.through)
    # Both error types are watched for "support"; their rows came from series_1m for the settled minutes.
    types = load_series(tenant, Grouping.ROUTE_VERSION_ERRORS, window, {Family.ERROR_TYPES},
                        settled_until=done.through)
    assert sorted(k["error_type"] for k in types.keys if k["route"] == "support") == ["RateLimitError", "Timeout"]

    # Again (a new process, nothing remembered): nothing to finalise, nothing written twice.
    finalised._checked.pop(tenant)
    again = finalise_settled(tenant, window)
    assert (again.through, again.minutes, again.late_from) == (done.through, 0, None)
    assert _rows(ch, tenant) == (rows, final_rows)

    # The window slides past the next grid point: only the newly settled batch is finalised.
    later = _window(END + 40)
    step = finalise_settled(tenant, later)
    assert step.through == at_minute(480) + FINALISE_EVERY and step.minutes == 30
    _all_same(tenant, later, step.through)


def test_late_spans_inside_the_settle_horizon_come_from_the_rollups(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    tenant = traffic.tenant_id
    window = _window()
    done = finalise_settled(tenant, window)
    # Minute 540 (09:00) is recent: not finalised, read from rollups_1m with its late spans.
    insert(ch, spans(tenant, route="support", model="gpt-a", minutes=[540], seed=7, calls_per_minute=6,
                     latency_ms=lambda _m: 5000.0))
    insert(ch, spans(tenant, route="brand-new", model="gpt-n", minutes=[545, 546], seed=8))
    finalised._checked.pop(tenant)
    assert finalise_settled(tenant, window).minutes == 0
    _all_same(tenant, window, done.through)
    matrix = load_series(tenant, Grouping.ROUTE_VERSION, window, {Family.TRAFFIC}, settled_until=done.through)
    support = [k["route"] for k in matrix.keys].index("support")
    assert matrix.columns["calls"][support, 540 - 120] == 10  # 4 on time + 6 late
    assert "brand-new" in [k["route"] for k in matrix.keys]


def test_late_spans_beyond_the_settle_horizon_are_finalised_again(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    tenant = traffic.tenant_id
    window = _window()
    first = finalise_settled(tenant, window)
    # Minutes 300 and 301 (05:00) are finalised already; spans for them arrive late, with a latency jump.
    insert(ch, spans(tenant, route="support", model="gpt-a", minutes=[300, 301], seed=9, calls_per_minute=20,
                     latency_ms=lambda _m: 9000.0))
    finalised._checked.pop(tenant)
    late = finalise_settled(tenant, window)
    assert (late.minutes, late.late_from) == (2, at_minute(300))
    _all_same(tenant, window, first.through)  # FINAL reads the newest version of the two minutes
    matrix = load_series(tenant, Grouping.ROUTE_VERSION, window, {Family.TRAFFIC, Family.LATENCY},
                         settled_until=first.through)
    support = [k["route"] for k in matrix.keys].index("support")
    assert matrix.columns["calls"][support, 300 - 120] == 24
    assert matrix.columns["latency_p95"][support, 300 - 120] > 8000
    finalised._checked.pop(tenant)
    assert finalise_settled(tenant, window).minutes == 0


def test_a_sweep_drops_cached_minutes_that_late_spans_changed(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    """The process cache keeps only finalised minutes, so the finaliser sees every later change to them."""
    tenant = traffic.tenant_id
    cache = SettledCache()
    now = at_minute(END)
    sweep.sweep_project(traffic, now=now, window_minutes=WIDTH, cache=cache)
    assert cache.misses > 0 and cache._entries
    window = _window()
    families = FAMILIES[Grouping.ROUTE_VERSION]
    through = finalised_end(window)
    _same(load_series(tenant, Grouping.ROUTE_VERSION, window, families, cache, settled_until=through),
          load_series(tenant, Grouping.ROUTE_VERSION, window, families))
    insert(ch, spans(tenant, route="search", model="gpt-b", minutes=[200], service="search", seed=10,
                     calls_per_minute=30))
    finalised._checked.pop(tenant)  # as at the next grid point, when the window is checked again
    misses = cache.misses
    report = sweep.sweep_project(traffic, now=now, window_minutes=WIDTH, cache=cache)
    assert report.failures == [] and "finalise" in report.seconds
    assert cache.misses >= misses + 2  # both groupings were dropped and loaded afresh
    warm = load_series(tenant, Grouping.ROUTE_VERSION, window, families, cache, settled_until=through)
    _same(warm, load_series(tenant, Grouping.ROUTE_VERSION, window, families))
    search = [k["route"] for k in warm.keys].index("search")
    assert warm.columns["calls"][search, 200 - 120] == 34


def test_finalised_end_floors_to_the_grid_and_never_precedes_the_window() -> None:
    end = datetime(2026, 11, 18, 10, 17, tzinfo=UTC)
    assert finalised_end(Window(end, 480)) == datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
    assert finalised_end(Window(end, 60)) == end - timedelta(minutes=60)  # all of it is recent
    future = Window.ending_now(480, datetime.now(UTC) + timedelta(days=1))
    assert finalised_end(future) == future.start  # nothing of a window in the future is settled
    straddling = Window.ending_now(480, datetime.now(UTC) + timedelta(hours=1))
    assert finalised_end(straddling) <= datetime.now(UTC) - timedelta(hours=2)
    with pytest.raises(ValueError, match="tenant id is required"):
        finalise_settled("", Window(end, 480))
