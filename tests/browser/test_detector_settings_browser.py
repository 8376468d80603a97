"""Detector settings in a real browser: the preview plot on a route's real history, and its alert markers moving
when the sensitivity changes."""

from __future__ import annotations

import datetime as dt

import pytest

from controlplane.models import Membership, Project
from tests.alerts.traffic import write_history
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "browser-pass-123"
# The plotly traces of the drawn preview: name, number of points, and how many of them are numbers.
PREVIEW_TRACES = """() => document.getElementById('chart-preview').data.map(t => ({
    name: t.name, meta: t.meta || null, points: (t.x || []).length,
    values: (t.y || []).filter(v => v !== null && v !== undefined).length}))"""


def _markers(page) -> int:  # type: ignore[no-untyped-def]
    page.wait_for_function("() => document.getElementById('chart-preview') && "
                           "document.getElementById('chart-preview').data")
    traces = page.evaluate(PREVIEW_TRACES)
    observed = next(t for t in traces if t["name"] == "observed")
    assert observed["points"] > 1000 and observed["values"] > 1000  # the real history is drawn
    assert next(t for t in traces if t["name"] == "expected band")["values"] > 1000
    (alerts,) = [t for t in traces if t["meta"] == "alerts"]
    assert alerts["points"] == alerts["values"]
    return int(alerts["points"])


def test_sensitivity_moves_the_preview_alert_markers(new_page, asgi_server, ch, django_user_model) -> None:  # type: ignore[no-untyped-def]
    project = Project.objects.create(slug="tuning", name="Tuning")
    write_history(ch, project.tenant_id, dt.datetime.now(dt.UTC))
    for role in ("viewer", "admin"):
        user = django_user_model.objects.create_user(f"{role}-t", password=PASSWORD)
        Membership.objects.create(user=user, project=project, role=role)

    page = new_page("admin-t", PASSWORD)
    page.goto(f"{asgi_server}/settings/?project=tuning")
    page.click("#detector-settings-link")
    page.wait_for_url(lambda url: "/settings/detectors/" in url)
    page.select_option("select[name=kind]", "latency_p95")
    page.wait_for_load_state("load")
    page.fill("#sensitivity", "0")
    with page.expect_navigation():
        page.click("#preview-button")
    low = _markers(page)
    page.fill("#sensitivity", "1")
    with page.expect_navigation():
        page.click("#preview-button")
    high = _markers(page)
    assert high > low >= 1
    assert "unsaved settings" in page.inner_text("main")
    screenshot(page, "detector-settings")
    with page.expect_navigation():
        page.click("#save-button")
    assert "Saved" in page.inner_text(".messages")
    assert page.input_value("#sensitivity") == "1.0"
    assert _markers(page) == high  # the saved settings preview the same

    viewer = new_page("viewer-t", PASSWORD)
    viewer.goto(f"{asgi_server}/settings/detectors/?project=tuning&kind=latency_p95&sensitivity=1")
    assert _markers(viewer) == high
    assert viewer.locator("#save-button").count() == 0
