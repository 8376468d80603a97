"""The per-user hourly rollup (``rollups_user_1h``, ClickHouse migration 0004) and the by-user spend read over it.

Real chDB throughout: spans go in the Collector way, the views fill ``llm_calls`` and the rollup, and every figure
the rollup gives is checked against the same sums taken straight from ``llm_calls``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import textwrap

import pytest

from dashboards.filters import Filters
from dashboards.queries.scope import Scope
from dashboards.queries.users import spend_by_user, whole_hours
from tests.dashboards.traffic import write_traffic
from tests.support import manage

pytestmark = pytest.mark.django_db

_SUMS = "count(), sum(ifNull(TotalCost, 0)), countIf(Priced = 0), sum(InputTokens), sum(OutputTokens)"


def _calls_by_user(ch, tenant: str, start: dt.datetime, end: dt.datetime, extra: str = "",  # type: ignore[no-untyped-def]
                   params: dict[str, str] | None = None) -> dict[str, tuple[int, float]]:
    rows = ch.query(
        "SELECT UserId, count(), sum(ifNull(TotalCost, 0)) FROM llm_calls WHERE ProjectId = {p:String} "
        "AND Timestamp >= {s:DateTime} "
        f"AND Timestamp < {{e:DateTime}}{extra} GROUP BY UserId",
        parameters={"p": tenant, "s": start, "e": end, **(params or {})},
    ).result_rows
    return {r[0]: (int(r[1]), float(r[2])) for r in rows}


def _read(tenant: str, start: dt.datetime, end: dt.datetime, **values: str):  # type: ignore[no-untyped-def]
    filters = Filters(start=start.replace(tzinfo=dt.UTC), end=end.replace(tzinfo=dt.UTC), range_key="custom",
                      values=values)
    return spend_by_user(Scope(tenant, filters), limit=100)


def _as_dict(result) -> dict[str, tuple[int, float]]:  # type: ignore[no-untyped-def]
    return {u.user_id: (u.calls, u.cost) for u in result.rows}


def _approx(expected: dict[str, tuple[int, float]]) -> dict[str, object]:
    return {user: (calls, pytest.approx(cost)) for user, (calls, cost) in expected.items()}


@pytest.fixture
def traffic(project, ch):  # type: ignore[no-untyped-def]
    """Three hours of traffic (three users, three models, one unpriced) ending at a fixed, ragged minute."""
    end = dt.datetime(2026, 11, 20, 15, 37, 30, tzinfo=dt.UTC)
    from tests.dashboards.traffic import DEFAULT_MODELS, Model, ensure_prices

    ensure_prices(ch)
    models = [*DEFAULT_MODELS, Model("unpriced-model", "unpriced-model-1", "acme", 900)]
    write_traffic(ch, project.tenant_id, minutes=180, per_minute=8, models=models, now=end)
    return project, end.replace(tzinfo=None)


def test_rollup_totals_equal_the_calls_totals(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    project, _ = traffic
    tenant = project.tenant_id
    per_user_hour = ch.query(
        f"SELECT UserId, Environment, toStartOfHour(Timestamp) AS h, {_SUMS} FROM llm_calls "
        "WHERE ProjectId = {p:String} GROUP BY UserId, Environment, h ORDER BY ALL", parameters={"p": tenant},
    ).result_rows
    rolled = ch.query(
        "SELECT UserId, Environment, Hour, sum(Calls), sum(Cost), sum(UnpricedCalls), sum(InputTokens), "
        "sum(OutputTokens) FROM rollups_user_1h WHERE ProjectId = {p:String} GROUP BY UserId, Environment, Hour "
        "ORDER BY ALL", parameters={"p": tenant},
    ).result_rows
    assert len(per_user_hour) == 3 * 4 * 1  # three users × four touched hours (12:37-15:37) × one environment
    assert [r[:4] + r[5:] for r in rolled] == [r[:4] + r[5:] for r in per_user_hour]
    assert [r[4] for r in rolled] == pytest.approx([r[4] for r in per_user_hour])
    assert sum(r[5] for r in rolled) > 0 and sum(r[4] for r in rolled) > 0  # some unpriced calls, some spend


def test_spend_by_user_reads_whole_hours_from_the_rollup_and_the_edges_from_calls(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    project, _ = traffic
    start = dt.datetime(2026, 11, 20, 13, 12, 40)  # ragged at both ends: 13:12:40 → 15:20:10
    stop = dt.datetime(2026, 11, 20, 15, 20, 10)
    result = _read(project.tenant_id, start, stop)
    assert result.from_rollup and result.unrolled_filters == ()
    expected = _calls_by_user(ch, project.tenant_id, start, stop)
    assert set(expected) == {"user-0", "user-1", "user-2"}
    assert _as_dict(result) == _approx(expected)
    assert [u.cost for u in result.rows] == sorted((u.cost for u in result.rows), reverse=True)


def test_spend_by_user_inside_one_hour_reads_calls(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    project, _ = traffic
    start, stop = dt.datetime(2026, 11, 20, 14, 5), dt.datetime(2026, 11, 20, 14, 50)
    result = _read(project.tenant_id, start, stop)
    assert not result.from_rollup
    assert _as_dict(result) == _approx(_calls_by_user(ch, project.tenant_id, start, stop))


def test_environment_filter_stays_on_the_rollup_other_filters_read_calls(traffic, ch) -> None:  # type: ignore[no-untyped-def]
    project, end = traffic
    start = dt.datetime(2026, 11, 20, 12, 30)
    in_prod = _read(project.tenant_id, start, end, environment="prod")
    assert in_prod.from_rollup
    assert _as_dict(in_prod) == _approx(_calls_by_user(ch, project.tenant_id, start, end))
    assert _read(project.tenant_id, start, end, environment="staging").rows == []

    by_model = _read(project.tenant_id, start, end, model="dash-large-2024-08-06")
    assert not by_model.from_rollup and by_model.unrolled_filters == ("model",)
    expected = _calls_by_user(ch, project.tenant_id, start, end, " AND ResponseModel = {m:String}",
                              {"m": "dash-large-2024-08-06"})
    assert _as_dict(by_model) == _approx(expected)
    assert sum(c for c, _ in expected.values()) < sum(u.calls for u in in_prod.rows)


def test_other_projects_rows_never_count(traffic, ch, django_user_model) -> None:  # type: ignore[no-untyped-def]
    from controlplane.models import Project

    project, end = traffic
    other = Project.objects.create(slug=f"other-{os.urandom(3).hex()}", name="Other")
    write_traffic(ch, other.tenant_id, minutes=30, per_minute=2, now=end.replace(tzinfo=dt.UTC))
    start = dt.datetime(2026, 11, 20, 12, 0)
    mine = _as_dict(_read(project.tenant_id, start, end))
    assert mine == _approx(_calls_by_user(ch, project.tenant_id, start, end))
    assert sum(c for c, _ in _as_dict(_read(other.tenant_id, start, end)).values()) == 60


def test_whole_hours() -> None:
    at = dt.datetime
    assert whole_hours(at(2026, 1, 1, 10, 5), at(2026, 1, 1, 13, 2)) == (at(2026, 1, 1, 11), at(2026, 1, 1, 13))
    assert whole_hours(at(2026, 1, 1, 10, 0), at(2026, 1, 1, 12, 0)) == (at(2026, 1, 1, 10), at(2026, 1, 1, 12))
    assert whole_hours(at(2026, 1, 1, 10, 5), at(2026, 1, 1, 11, 2)) is None


def test_the_cost_page_fragment_uses_the_rollup_and_says_when_it_cannot(client, traffic, member) -> None:  # type: ignore[no-untyped-def]
    project, _ = traffic
    from ingestion.clickhouse.client import get_client

    write_traffic(get_client(), project.tenant_id, minutes=90, per_minute=3)  # the page's window ends now
    client.force_login(member("viewer"))
    fig = client.get("/cost/users/", {"project": project.slug}).json()
    assert fig["layout"]["title"]["text"] == "Spend by user"
    assert set(fig["data"][0]["y"]) == {"user-0", "user-1", "user-2"} and min(fig["data"][0]["x"]) > 0
    filtered = client.get("/cost/users/", {"project": project.slug, "route": "chat"}).json()
    assert "no route filter" in filtered["layout"]["title"]["text"]
    assert filtered["data"][0]["x"] and sum(filtered["data"][0]["x"]) < sum(fig["data"][0]["x"])


BACKFILL_SCRIPT = textwrap.dedent("""
    import datetime as dt, json
    from ingestion.clickhouse.client import get_client
    from ingestion.clickhouse.migrator import migrate
    migrate(log=lambda _l: None, up_to=3)
    ch = get_client()
    ch.command('''INSERT INTO llm_calls (ProjectId, Timestamp, TraceId, SpanId, Environment, UserId, InputTokens,
        OutputTokens, TotalCost, Priced)
        SELECT 'tenant-a', toDateTime64('2026-11-20 00:00:00', 9) + toIntervalSecond(number * 37), hex(number),
          hex(number), if(number % 4 = 0, 'staging', 'prod'), 'u-' || toString(number % 7), 100 + number % 50,
          10 + number % 9, if(number % 5 = 0, NULL, (number % 13) * 0.001), toUInt8(number % 5 != 0)
        FROM numbers(5000)''')
    before = ch.query("SELECT count() FROM system.tables WHERE name = 'rollups_user_1h'").result_rows[0][0]
    applied = [m.version for m in migrate(log=lambda _l: None, up_to=4)]
    q = lambda sql: [list(r) for r in ch.query(sql).result_rows]
    print(json.dumps({"before": before, "applied": applied,
      "rollup": q("SELECT UserId, Environment, toString(Hour), sum(Calls), round(sum(Cost), 9), sum(UnpricedCalls), "
                  "sum(InputTokens), sum(OutputTokens) FROM rollups_user_1h GROUP BY ALL ORDER BY ALL"),
      "calls": q("SELECT UserId, Environment, toString(toStartOfHour(Timestamp)) h, count(), "
                 "round(sum(ifNull(TotalCost, 0)), 9), countIf(Priced = 0), sum(InputTokens), sum(OutputTokens) "
                 "FROM llm_calls GROUP BY UserId, Environment, h ORDER BY ALL")}))
""")


def test_migration_0004_backfills_the_calls_already_stored(tmp_path: os.PathLike[str]) -> None:
    """On a store built up to 0003 with calls in it, applying 0004 fills the rollup with exactly those calls."""
    done = manage("shell", "-c", BACKFILL_SCRIPT, env={"KEEL_VAR_DIR": str(tmp_path)}, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["before"] == 0 and out["applied"] == [4]
    assert len(out["calls"]) > 14 * 2  # 7 users × 2 environments over ~51 hours of calls
    assert out["rollup"] == out["calls"]
