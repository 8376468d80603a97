"""Every page renders real data from the rollups for the signed-in member, and only for their project."""

from __future__ import annotations

import json
import re

import plotly.graph_objects as go
import pytest

from controlplane.models import Project

pytestmark = pytest.mark.django_db

PAGES = ["/", "/cost/", "/latency/", "/versions/", "/alerts/", "/routes/", "/traces/", "/coverage/"]


def figures_in(html: str) -> dict[str, dict]:
    found = re.findall(r'<script type="application/json" id="fig-([\w-]+)">(.*?)</script>', html, re.S)
    return {name: json.loads(body) for name, body in found}


def points(fig: dict) -> int:
    return sum(len(t.get("x") or []) for t in fig["data"])


@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_for_a_viewer(client, traffic_project, member, url) -> None:
    client.force_login(member("viewer"))
    response = client.get(url, {"project": traffic_project.slug})
    assert response.status_code == 200, response.content[:500]
    html = response.content.decode()
    assert traffic_project.name in html
    for name, fig in figures_in(html).items():
        go.Figure(fig)  # a valid plotly figure, or this raises
        assert fig["data"], name


def test_overview_numbers_come_from_the_rollups(client, traffic_project, member) -> None:
    client.force_login(member("viewer"))
    html = client.get("/", {"project": traffic_project.slug}).content.decode()
    # 120 minutes x 6 calls = 720 calls in the last 24 h.
    assert re.search(r'data-kpi="calls">720<', html)
    figs = figures_in(html)
    assert sum(sum(t["y"]) for t in figs["calls"]["data"]) == 720
    assert points(figs["latency"]) > 0
    assert "dash-large-2024-08-06" in html and "summarise" in html


def test_model_filter_changes_the_chart_data(client, traffic_project, member) -> None:
    client.force_login(member("viewer"))
    everything = figures_in(client.get("/", {"project": traffic_project.slug}).content.decode())
    one = figures_in(client.get("/", {"project": traffic_project.slug, "model": "dash-small-2024-07-18"})
                     .content.decode())
    assert sum(sum(t["y"]) for t in one["calls"]["data"]) == 240
    assert sum(sum(t["y"]) for t in everything["calls"]["data"]) == 720


def test_cost_page_lists_unpriced_models(client, project, ch, member) -> None:
    from tests.dashboards.traffic import Model, ensure_prices, write_traffic

    ensure_prices(ch)
    write_traffic(ch, project.tenant_id, minutes=10, models=[
        Model("dash-small", "dash-small-2024-07-18", "openai", 500),
        Model("mystery-model", "mystery-model-9", "acme", 500),
    ])
    admin = member("admin")
    client.force_login(admin)
    html = client.get("/cost/", {"project": project.slug}).content.decode()
    assert re.search(r'data-kpi="unpriced">50\.0%<', html)
    assert re.search(r"<td data-unpriced-model>mystery-model-9</td>", html)
    assert "/settings/prices/new/" not in html and "ask a staff user" in html  # prices are shared: staff only
    type(admin).objects.filter(pk=admin.pk).update(is_staff=True)
    staff_html = client.get("/cost/", {"project": project.slug}).content.decode()
    assert (f"/settings/prices/new/?project={project.slug}&amp;model_pattern=mystery-model-9&amp;provider=acme"
            in staff_html)
    figs = figures_in(html)
    assert {"by_model", "by_provider", "by_service", "by_route", "by_cost_center"} <= set(figs)
    assert figs["by_model"]["data"][0]["y"] == ["mystery-model-9", "dash-small-2024-07-18"]  # biggest at top
    users = client.get("/cost/users/", {"project": project.slug}).json()
    go.Figure(users)
    assert set(users["data"][0]["y"]) == {"user-0", "user-1", "user-2"}


def test_trace_detail_shows_spans_and_the_normalised_call(client, traffic_project, member, ch) -> None:
    client.force_login(member("viewer"))
    html = client.get("/traces/", {"project": traffic_project.slug, "q": "order 3-1 refund"}).content.decode()
    trace_ids = re.findall(r'data-trace="([0-9a-f]+)"', html)
    assert len(trace_ids) == 1
    detail = client.get(f"/traces/{trace_ids[0]}/", {"project": traffic_project.slug})
    assert detail.status_code == 200
    page = detail.content.decode()
    assert points(figures_in(page)["waterfall"]) == 1
    assert "gen_ai.response.model" in page and "Normalised call" in page


def test_another_projects_trace_is_not_found(client, traffic_project, member) -> None:
    other = Project.objects.create(slug="other-dash", name="Other")
    client.force_login(member("viewer"))
    html = client.get("/traces/", {"project": traffic_project.slug}).content.decode()
    trace_id = re.findall(r'data-trace="([0-9a-f]+)"', html)[0]
    # A member of the traffic project asking for the other project is refused outright…
    assert client.get(f"/traces/{trace_id}/", {"project": other.slug}).status_code == 403
    # …and a member of the other project cannot read this project's trace by id.
    from controlplane.models import Membership

    outsider = type(member("viewer", "outsider")).objects.get(username="outsider")
    Membership.objects.filter(user=outsider).update(project=other)
    client.force_login(outsider)
    assert client.get(f"/traces/{trace_id}/", {"project": other.slug}).status_code == 404


def test_pages_need_a_login_and_a_membership(client, traffic_project, django_user_model) -> None:
    assert client.get("/").status_code == 302
    stranger = django_user_model.objects.create_user("stranger", password="pw-long-enough-1")
    client.force_login(stranger)
    assert client.get("/", {"project": traffic_project.slug}).status_code == 403


def test_settings_are_for_admins(client, traffic_project, member) -> None:
    client.force_login(member("operator"))
    assert client.get("/settings/", {"project": traffic_project.slug}).status_code == 403
    client.force_login(member("admin"))
    assert client.get("/settings/", {"project": traffic_project.slug}).status_code == 200


def test_plotly_js_is_served_from_the_installed_package(client) -> None:
    response = client.get("/assets/plotly.min.js")
    assert response.status_code == 200
    body = response.content
    assert b"plotly.js" in body[:2000] and len(body) > 1_000_000


def test_bad_filters_fall_back_to_defaults(client, traffic_project, member) -> None:
    client.force_login(member("viewer"))
    response = client.get("/", {"project": traffic_project.slug, "range": "99y", "from": "yesterday"})
    assert response.status_code == 200
    assert 'value="24h" data-autosubmit checked' in response.content.decode()


def test_long_range_cache_never_crosses_projects_or_filters(ch, traffic_project) -> None:
    from datetime import UTC, datetime, timedelta

    from dashboards.filters import Filters
    from dashboards.queries import rollups
    from dashboards.queries.scope import Scope
    from tests.dashboards.traffic import write_traffic

    other = Project.objects.create(slug="cache-other", name="Other")
    write_traffic(ch, other.tenant_id, minutes=10, per_minute=1)
    now = datetime.now(UTC)
    window = {"start": now - timedelta(days=30), "end": now, "range_key": "30d"}
    mine = rollups.totals(Scope(traffic_project.tenant_id, Filters(**window)))
    theirs = rollups.totals(Scope(other.tenant_id, Filters(**window)))
    small = rollups.totals(Scope(traffic_project.tenant_id,
                                 Filters(**window, values={"model": "dash-small-2024-07-18"})))
    assert (mine.calls, theirs.calls, small.calls) == (720, 10, 240)
    assert rollups.totals(Scope(other.tenant_id, Filters(**window))).calls == 10  # served from the cache
