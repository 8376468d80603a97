"""The single pane in a real browser: every page with real data, filters, live alerts, rollback, roles."""

from __future__ import annotations

import datetime as dt
import importlib.util
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from controlplane.models import AuditEntry, Membership, Project
from controlplane.models.routing import RoutingPolicyVersion
from tests.browser.conftest import charts, screenshot
from tests.dashboards.conftest import make_route
from tests.dashboards.traffic import DEFAULT_MODELS, Model, ensure_prices, span_row
from tests.support import COLLECTOR_COLUMNS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "browser-pass-123"
NEW_LARGE = Model("dash-large", "dash-large-2024-11-20", "openai", 2600, 0.08)


def seed_day(ch, tenant: str) -> None:  # type: ignore[no-untyped-def]
    """A day of traffic; six hours ago a new large-model version took over the chat route and got slower."""
    rng = random.Random(3)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for m in range(0, 24 * 60, 2):
        when = now - dt.timedelta(minutes=m, seconds=7)
        daily = 1 + 0.5 * abs(12 - when.hour) / 12
        for i in range(int(4 * daily)):
            model = DEFAULT_MODELS[i % 3]
            if model.request == "dash-large" and m < 360:
                model = NEW_LARGE
            route = "chat" if i % 2 == 0 else "summarise"
            rows.append(span_row(
                tenant, when, model, route=route, service=("checkout", "support-bot")[i % 2],
                user=f"user-{rng.randint(1, 6)}", cost_center=("growth", "support")[i % 2],
                error=rng.random() < model.error_rate, latency_ms=model.latency_ms * rng.uniform(0.6, 1.5),
                prompt=f"where is my order {m}-{i}?",
            ))
    ch.insert("otel_traces", rows, column_names=COLLECTOR_COLUMNS)


@pytest.fixture
def world(django_user_model, ch):  # type: ignore[no-untyped-def]
    from dashboards.models import ServiceLevelObjective

    project = Project.objects.create(slug="acme-prod", name="Acme production")
    ensure_prices(ch)
    seed_day(ch, project.tenant_id)
    users = {}
    for role in ("viewer", "oncall", "operator", "admin"):
        users[role] = django_user_model.objects.create_user(f"{role}-b", password=PASSWORD)
        Membership.objects.create(user=users[role], project=project, role=role)
    route = make_route(project)
    ServiceLevelObjective.objects.create(project=project, route="chat", metric="latency_p95", threshold=2500,
                                         objective=0.99)
    ServiceLevelObjective.objects.create(project=project, route="summarise", metric="error_rate", threshold=0,
                                         objective=0.995)
    return {"project": project, "users": users, "route": route}


PAGES = {
    "overview": ("/", ["chart-calls", "chart-cost", "chart-latency", "chart-errors"]),
    "cost": ("/cost/", ["chart-trend", "chart-by_model", "chart-by_provider", "chart-by_user"]),
    "latency": ("/latency/", ["chart-p95", "chart-p50", "chart-ttft", "chart-tps"]),
    "versions": ("/versions/?route=chat", ["chart-share", "chart-p95", "chart-errors"]),
    "traces": ("/traces/", []),
    "coverage": ("/coverage/", ["chart-coverage"]),
    "routes": ("/routes/", []),
    "alerts": ("/alerts/", []),
    "settings": ("/settings/", []),
}


def test_every_page_renders_real_data(world, browser, new_page, asgi_server) -> None:
    slug = world["project"].slug
    anonymous = browser.new_context(viewport={"width": 1280, "height": 800})
    login = anonymous.new_page()
    login.goto(f"{asgi_server}/cost/?project={slug}")
    assert "/login/" in login.url  # pages need a session
    screenshot(login, "login")
    anonymous.close()
    page = new_page("admin-b", PASSWORD)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for name, (url, expected) in PAGES.items():
        joiner = "&" if "?" in url else "?"
        page.goto(f"{asgi_server}{url}{joiner}project={slug}")
        assert page.locator("main h1").count() == 1, name
        found = charts(page)
        for chart_id in expected:
            assert found[chart_id]["traces"] >= 1, (name, chart_id, found)
            assert found[chart_id]["points"] >= 1, (name, chart_id, found)
        if name == "overview":
            assert page.locator('[data-kpi="calls"]').inner_text() not in ("0", "—")
        if name == "versions":
            assert found["chart-share"]["traces"] >= 2  # old and new large versions share the route
        if name == "traces":
            page.locator("a[data-trace]").first.click()
            page.wait_for_url("**/traces/*/**")
            assert charts(page)["chart-waterfall"]["points"] >= 1
            screenshot(page, "trace-detail")
            page.go_back()
        screenshot(page, name, docs=name in {"overview", "versions", "alerts"})
    assert errors == []


def test_filtering_by_model_changes_the_chart(world, new_page, asgi_server) -> None:
    page = new_page("viewer-b", PASSWORD)
    page.goto(f"{asgi_server}/?project={world['project'].slug}")
    total = page.evaluate("() => document.getElementById('chart-calls').data[0].y.reduce((a, b) => a + b, 0)")
    page.select_option("select[name=model]", "dash-small-2024-07-18")
    page.wait_for_url("**model=dash-small-2024-07-18**")
    filtered = page.evaluate("() => document.getElementById('chart-calls').data[0].y.reduce((a, b) => a + b, 0)")
    assert 0 < filtered < total
    assert page.locator("select[name=model]").input_value() == "dash-small-2024-07-18"


def test_operator_rolls_back_after_confirming(world, new_page, asgi_server) -> None:
    project, route = world["project"], world["route"]
    before = RoutingPolicyVersion.objects.get(project=project).version
    page = new_page("operator-b", PASSWORD)
    page.goto(f"{asgi_server}/routes/{route.pk}/?project={project.slug}")
    page.click("#rollback-button")
    dialog = page.locator("#rollback-dialog")
    assert dialog.is_visible()
    assert "Cost per call" in dialog.inner_text()
    screenshot(page, "rollback-confirm")
    dialog.locator("input[name=reason]").fill("p95 regression after the new large version")
    page.click("#confirm-rollback")
    page.wait_for_selector(".messages li.success")
    assert page.locator("[data-active-revision]").inner_text() == "r1"
    assert RoutingPolicyVersion.objects.get(project=project).version == before + 1
    entry = AuditEntry.objects.filter(project=project, event="action.applied").order_by("-at").first()
    assert entry is not None and entry.actor == "user:operator-b"
    assert page.locator('#audit tr[data-audit-event="action.applied"]').count() >= 1
    screenshot(page, "route-after-rollback")


def test_operator_reroutes_with_custom_weights_after_previewing(world, new_page, asgi_server) -> None:
    project, route = world["project"], world["route"]
    before = RoutingPolicyVersion.objects.get(project=project).version
    page = new_page("operator-b", PASSWORD)
    page.goto(f"{asgi_server}/routes/{route.pk}/?project={project.slug}")
    page.click("#custom-reroute-button")
    dialog = page.locator("#reroute-custom")
    assert dialog.is_visible() and page.locator("#confirm-custom-reroute").is_disabled()
    dialog.locator('input[name="weight:small-1"]').fill("60")
    assert dialog.locator("[data-weight-total]").inner_text() == "160"  # running total flags the bad sum
    page.click("#preview-custom-reroute")
    dialog.locator('[data-preview-state="invalid"]').wait_for()
    assert "sum to 100" in dialog.locator("#custom-reroute-preview").inner_text()
    assert page.locator("#confirm-custom-reroute").is_disabled()
    dialog.locator('input[name="weight:small-1"]').fill("25")
    dialog.locator('input[name="weight:large-1"]').fill("75")
    page.click("#preview-custom-reroute")
    dialog.locator('[data-preview-state="valid"]').wait_for()
    assert "Cost per call" in dialog.inner_text() and page.locator("#confirm-custom-reroute").is_enabled()
    dialog.locator("input[name=reason]").fill("25/75 split while the new large version is investigated")
    screenshot(page, "reroute-custom-confirm")
    page.click("#confirm-custom-reroute")
    page.wait_for_selector(".messages li.success")
    assert page.locator("[data-active-revision]").inner_text() == "r3"
    route.refresh_from_db()
    assert route.active_revision.effective_weights() == {"small-1": 25.0, "large-1": 75.0}
    assert RoutingPolicyVersion.objects.get(project=project).version == before + 1
    entry = AuditEntry.objects.filter(project=project, event="action.applied").order_by("-at").first()
    assert entry is not None and entry.actor == "user:operator-b" and entry.data["after"] == 3
    assert entry.data["params"]["weights"] == {"small-1": 25.0, "large-1": 75.0}
    assert page.locator('#audit tr[data-audit-event="action.applied"]').count() >= 1
    screenshot(page, "route-after-custom-reroute")


def test_viewer_has_no_rollback_and_a_forged_post_is_refused(world, new_page, asgi_server) -> None:
    project, route = world["project"], world["route"]
    page = new_page("viewer-b", PASSWORD)
    page.goto(f"{asgi_server}/routes/{route.pk}/?project={project.slug}")
    assert page.locator("#rollback-button").count() == 0
    assert page.locator("text=Confirm rollback").count() == 0
    assert page.locator("#custom-reroute-button").count() == 0 and page.locator("input.weight").count() == 0
    status = page.evaluate(
        """async (url) => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const body = new URLSearchParams({csrfmiddlewaretoken: token, to_revision: '1'});
            const r = await fetch(url, {method: 'POST', body, credentials: 'same-origin'});
            return r.status;
        }""",
        f"/routes/{route.pk}/rollback/?project={project.slug}",
    )
    assert status == 403
    route.refresh_from_db()
    assert route.active_revision.number == 2


def test_admin_creates_a_notification_channel_and_a_price_in_the_app(world, new_page, asgi_server) -> None:
    from anomaly.models import NotificationChannel
    from ingestion.models import Price

    project = world["project"]
    type(world["users"]["admin"]).objects.filter(username="admin-b").update(is_staff=True)  # prices are shared
    page = new_page("admin-b", PASSWORD)
    page.goto(f"{asgi_server}/settings/?project={project.slug}")
    page.click("#new-channel")
    page.fill("input[name=name]", "on-call webhook")
    page.select_option("select[name=kind]", "webhook")
    page.select_option("select[name=min_severity]", "warning")
    page.fill("input[name=config_url]", "not-a-url")
    page.click("#save-config")
    assert "url must be an http(s) URL" in page.locator("#form-errors").inner_text()  # inline, nothing saved
    assert not NotificationChannel.objects.filter(project=project).exists()
    screenshot(page, "settings-channel-invalid")
    page.fill("input[name=config_url]", "https://hooks.example.invalid/keel")
    page.fill("input[name=config_secret]", "whsec-browser-test")
    page.click("#save-config")
    page.wait_for_selector(".messages li.success")
    assert page.locator('tr[data-channel="on-call webhook"]').count() == 1
    channel = NotificationChannel.objects.get(project=project)
    assert (channel.kind, channel.min_severity, channel.config["secret"]) == ("webhook", "warning",
                                                                             "whsec-browser-test")

    page.click("#new-price")
    page.fill("input[name=provider]", "acme")
    page.fill("input[name=model_pattern]", "browser-model-*")
    page.fill("input[name=valid_from]", "2025-01-01")
    page.fill("input[name=input_per_mtok]", "0.4")
    page.fill("input[name=output_per_mtok]", "1.6")
    page.fill("input[name=source]", "entered in the browser test")
    page.click("#save-config")
    page.wait_for_selector(".messages li.success")
    assert page.locator('tr[data-price="browser-model-*"]').count() == 1
    price = Price.objects.get(model_pattern="browser-model-*")
    assert (price.provider, str(price.input_per_mtok), str(price.output_per_mtok)) == ("acme", "0.400000",
                                                                                     "1.600000")
    screenshot(page, "settings-after-forms")


ALERTS_READY = importlib.util.find_spec("anomaly.alerts") is not None


@pytest.mark.skipif(not ALERTS_READY, reason="anomaly.alerts (the alert lifecycle service) is not in this build")
def test_a_detected_alert_appears_live_and_is_acknowledged(world, new_page, asgi_server) -> None:
    from tests.browser.alerting import raise_alert_by_detector_run

    project = world["project"]
    page = new_page("oncall-b", PASSWORD)
    page.goto(f"{asgi_server}/alerts/?project={project.slug}")
    page.wait_for_function("() => document.body.dataset.live === 'on'")
    before = page.locator("#alert-rows tr[data-alert-id]").count()
    # Off the test thread: Playwright's sync API keeps an event loop running here, as a Celery worker would not.
    with ThreadPoolExecutor(max_workers=1) as pool:
        alert = pool.submit(raise_alert_by_detector_run, project).result(timeout=30)
    row = page.locator(f'#alert-rows tr[data-alert-id="{alert.pk}"]')
    row.wait_for(timeout=10_000)  # arrived over the WebSocket, no reload
    assert page.locator("#alert-rows tr[data-alert-id]").count() > before  # the sweep's incident (and its members)
    screenshot(page, "alerts", docs=True)
    row.locator("a").first.click()
    page.wait_for_url(f"**/alerts/{alert.pk}/**")
    screenshot(page, "alert-detail", docs=True)
    page.click("#ack-button")
    page.wait_for_selector(".messages li.success")
    assert page.locator("#alert-state").inner_text() == "Acknowledged"
    alert.refresh_from_db()
    assert alert.state == "acknowledged"
