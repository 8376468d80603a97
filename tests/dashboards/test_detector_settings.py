"""The detector settings page: previews on a route's real rollups (chDB) with the production detector code, roles,
CSRF-protected saves, and no other project's series."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import plotly.graph_objects as go
import pytest

from django.test import Client
from django.urls import reverse

from anomaly.backtest import detect_lines
from anomaly.models import DetectorConfig
from anomaly.rollups import Family, Grouping, Window, load_series
from controlplane.models import Project
from tests.alerts.traffic import HISTORY_MINUTES, insert, spans, write_history

pytestmark = pytest.mark.django_db

URL = reverse("dashboards:detectors")
SERIES = json.dumps(["prod", "support", "gpt-a"])


@pytest.fixture
def history(project, ch):  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    write_history(ch, project.tenant_id, now,
                  errors=lambda m, k: "RateLimitError" if m >= HISTORY_MINUTES - 20 and k % 2 == 0 else None)
    return project


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def _figure(response) -> dict:  # type: ignore[no-untyped-def,type-arg]
    match = re.search(rb'<script type="application/json" id="fig-preview">(.*?)</script>', response.content, re.S)
    assert match, "the page has no preview figure"
    figure = json.loads(match.group(1))
    go.Figure(figure)  # a valid plotly figure
    return figure


def _alert_markers(figure: dict) -> list[str]:  # type: ignore[type-arg]
    (trace,) = [t for t in figure["data"] if t.get("meta") == "alerts"]
    assert len(trace["x"]) == len(trace["y"])
    return list(trace["x"])


def _preview(client: Client, project: Project, **params: object):  # type: ignore[no-untyped-def]
    response = client.get(URL, {"project": project.slug, "kind": "latency_p95", "series": SERIES, "days": 3,
                                **params})
    assert response.status_code == 200
    return response


def test_viewer_previews_band_and_alerts_on_real_history(history, member) -> None:  # type: ignore[no-untyped-def]
    client = _client(member("viewer"))
    response = _preview(client, history)
    figure = _figure(response)
    names = [t["name"] for t in figure["data"]]
    assert "observed" in names and "expected" in names and "expected band" in names
    observed = next(t for t in figure["data"] if t["name"] == "observed")
    assert len(observed["x"]) == HISTORY_MINUTES and max(v for v in observed["y"] if v) > 2000
    markers = _alert_markers(figure)
    # The 3x step of the last 30 minutes alerts (within a few minutes of its start).
    step = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=30)
    assert any(abs(dt.datetime.fromisoformat(x) - step) <= dt.timedelta(minutes=5) for x in markers)
    assert b"Save the previewed settings" not in response.content  # viewers preview, admins save
    assert b"needs the Admin role" in response.content


def test_sensitivity_changes_which_points_alert(history, member) -> None:  # type: ignore[no-untyped-def]
    client = _client(member("viewer"))
    low = _alert_markers(_figure(_preview(client, history, sensitivity="0")))
    high = _alert_markers(_figure(_preview(client, history, sensitivity="1")))
    assert len(high) > len(low) >= 1
    assert b"unsaved settings" in _preview(client, history, sensitivity="1").content
    assert DetectorConfig.objects.get(project=history, kind="latency_p95").sensitivity == 0.5  # nothing saved


def test_preview_is_the_backtest_of_the_same_series(history, member) -> None:  # type: ignore[no-untyped-def]
    """What the page marks equals ``manage.py detect`` on the series exported as CSV (same code, same policy)."""
    client = _client(member("viewer"))
    markers = _alert_markers(_figure(_preview(client, history, sensitivity="0.8")))
    window = Window.ending_now(HISTORY_MINUTES, dt.datetime.now(dt.UTC))
    matrix = load_series(history.tenant_id, Grouping.ROUTE_VERSION, window, {Family.TRAFFIC, Family.LATENCY})
    csv = io.StringIO("timestamp,value,calls\n" + "".join(
        f"{t},{p},{c}\n" for t, p, c in zip(matrix.timestamps, matrix.columns["latency_p95"][0],
                                            matrix.columns["calls"][0], strict=True)))
    lines = detect_lines(csv, metric="latency", sensitivity=0.8)
    fired = [int(line.split(",")[0]) for line in lines[1:] if line.endswith(",1")]
    assert fired and [dt.datetime.fromtimestamp(t, dt.UTC).isoformat() for t in fired] == markers


def test_admin_saves_settings_with_csrf_and_roles(history, member) -> None:  # type: ignore[no-untyped-def]
    admin = member("admin")
    body = {"project": history.slug, "kind": "latency_p95", "series": SERIES, "days": "3", "sensitivity": "0.8",
            "min_calls": "10", "cooldown_minutes": "45", "renotify_minutes": "60", "enabled": "on"}
    for role in ("viewer", "oncall", "operator"):
        assert _client(member(role)).post(URL, body).status_code == 403
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(admin)
    assert csrf.post(URL, body).status_code == 403  # no token
    response = _client(admin).post(URL, body)
    assert response.status_code == 302 and "kind=latency_p95" in response["Location"]
    config = DetectorConfig.objects.get(project=history, kind="latency_p95")
    assert (config.sensitivity, config.min_calls, config.cooldown_minutes, config.renotify_minutes, config.enabled) \
        == (0.8, 10, 45, 60, True)
    # An unticked checkbox turns the detector off; a bad number is refused and changes nothing.
    _client(admin).post(URL, {k: v for k, v in body.items() if k != "enabled"})
    assert not DetectorConfig.objects.get(project=history, kind="latency_p95").enabled
    response = _client(admin).post(URL, {**body, "sensitivity": "7"}, follow=True)
    assert b"sensitivity must be between" in response.content
    assert DetectorConfig.objects.get(project=history, kind="latency_p95").sensitivity == 0.8
    page = _client(admin).get(URL, {"project": history.slug, "kind": "latency_p95"})
    assert b"Save the previewed settings" in page.content
    settings_page = _client(admin).get(reverse("dashboards:settings"), {"project": history.slug})
    assert f'{URL}?project={history.slug}'.encode() in settings_page.content
    assert b"admin/anomaly/detectorconfig" not in settings_page.content


def test_error_type_preview_and_no_other_projects_series(history, member, ch, django_user_model) -> None:  # type: ignore[no-untyped-def]
    other = Project.objects.create(slug="other-tenant", name="Other")
    insert(ch, spans(other.tenant_id, route="secret-route", model="gpt-x", minutes=range(60),
                     start=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=61)))
    client = _client(member("viewer"))
    response = client.get(URL, {"project": history.slug, "kind": "error_rate_by_type", "series": SERIES})
    assert response.status_code == 200
    assert b'<option value="RateLimitError" selected>' in response.content
    assert _alert_markers(_figure(response))  # half the calls rate-limited for 20 minutes
    # Another project's series is not offered and asking for it previews this project's own series instead.
    foreign = client.get(URL, {"project": history.slug, "kind": "latency_p95",
                               "series": json.dumps(["", "secret-route", "gpt-x"])})
    assert b"secret-route" not in foreign.content and b"support" in foreign.content
    # A user of another project only is refused.
    outsider = django_user_model.objects.create_user("outsider", password="pw-long-enough-1")
    assert _client(outsider).get(URL, {"project": history.slug}).status_code == 403


def test_empty_project_and_joint_detector_render_without_preview(project, member) -> None:  # type: ignore[no-untyped-def]
    client = _client(member("viewer"))
    empty = client.get(URL, {"project": project.slug, "kind": "latency_p95"})
    assert empty.status_code == 200 and b"nothing to preview" in empty.content and b"fig-preview" not in empty.content
    joint = client.get(URL, {"project": project.slug, "kind": "multivariate"})
    assert joint.status_code == 200 and b"no per-series preview" in joint.content
    assert client.get(URL, {"project": project.slug, "kind": "drift"}).status_code == 404
    bad = client.get(URL, {"project": project.slug, "kind": "latency_p95", "sensitivity": "nan", "days": "x"})
    assert bad.status_code == 200
