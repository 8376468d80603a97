"""In-app settings forms: policies (operator+), budgets, notification channels, SLOs (admin) and prices (staff).

Each form: a valid create and edit go through the owner's write path (audited where the API audits), invalid input
comes back inline with a 400, a role too low is a 403, another project's row is a 404, and POSTs need CSRF.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from django.test import Client

from anomaly.models import NotificationChannel
from controlplane.models import AuditEntry, Budget, Policy, Project
from dashboards.models import ServiceLevelObjective
from ingestion.models import Price
from tests.dashboards.conftest import make_route

pytestmark = pytest.mark.django_db

POLICY = {"name": "roll back slow versions", "enabled": "on", "detector": "latency_p95", "min_severity": "warning",
          "min_duration_s": "60", "action": "rollback", "reroute_to": "", "mode": "suggest", "cooldown_s": "600",
          "max_actions_per_hour": "3", "min_calls": "20", "max_staleness_s": "600", "verify_after_s": "600"}


def url(kind: str, project: Project, pk: int | None = None, action: str = "") -> str:
    middle = f"{pk}/" if pk is not None else "new/"
    return f"/settings/{kind}/{middle}{action + '/' if action else ''}?project={project.slug}"


def errors_for(html: str, field: str) -> list[str]:
    block = re.search(rf'<ul class="errorlist" data-errors-for="{re.escape(field)}">(.*?)</ul>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", block.group(1)) if block else []


@pytest.fixture
def other_project(django_user_model):  # type: ignore[no-untyped-def]
    return Project.objects.create(slug="someone-else", name="Someone else")


# ---------------------------------------------------------------- policies (operator and above)


def test_operator_creates_edits_and_deletes_a_policy(client, project, member) -> None:  # type: ignore[no-untyped-def]
    route = make_route(project)
    client.force_login(member("operator"))
    form = client.get(url("policies", project)).content.decode()
    assert 'name="csrfmiddlewaretoken"' in form and f'<option value="{route.pk}">chat@prod</option>' in form
    response = client.post(url("policies", project), {**POLICY, "route": route.pk})
    assert response.status_code == 302 and response["Location"].startswith("/routes/")
    policy = Policy.objects.get(project=project)
    assert (policy.name, policy.route, policy.min_duration_s, policy.enabled) == (POLICY["name"], route, 60, True)
    created = AuditEntry.objects.get(project=project, event="policy.created")
    assert created.actor == "user:operator-user" and created.data["min_duration_s"] == 60

    edited = {**POLICY, "route": route.pk, "mode": "approve", "min_calls": "50"}
    edited.pop("enabled")  # an unticked checkbox is not posted
    assert client.post(url("policies", project, policy.pk), edited).status_code == 302
    policy.refresh_from_db()
    assert (policy.mode, policy.min_calls, policy.enabled) == ("approve", 50, False)
    assert AuditEntry.objects.filter(project=project, event="policy.updated").count() == 1
    routes_page = client.get("/routes/", {"project": project.slug}).content.decode()
    assert f'data-policy="{POLICY["name"]}"' in routes_page and 'id="new-policy"' in routes_page

    assert client.post(url("policies", project, policy.pk, "delete")).status_code == 302
    assert not Policy.objects.filter(pk=policy.pk).exists()
    assert AuditEntry.objects.filter(project=project, event="policy.deleted").count() == 1


def test_invalid_policy_is_shown_inline_and_not_saved(client, project, member) -> None:  # type: ignore[no-untyped-def]
    route = make_route(project)
    client.force_login(member("operator"))
    response = client.post(url("policies", project), {**POLICY, "name": "", "action": "reroute",
                                                      "route": route.pk, "min_calls": "lots"})
    assert response.status_code == 400
    html = response.content.decode()
    assert errors_for(html, "name") == ["This field may not be blank."]
    assert errors_for(html, "min_calls") == ["A valid integer is required."]
    assert 'value="lots"' in html  # the posted values come back for correction
    assert not Policy.objects.filter(project=project).exists()
    missing_target = client.post(url("policies", project), {**POLICY, "action": "reroute", "route": route.pk})
    assert errors_for(missing_target.content.decode(), "reroute_to") == [
        "A reroute policy needs the deployment to reroute to."]


def test_policy_cannot_point_at_another_projects_route(client, project, member, other_project) -> None:  # type: ignore[no-untyped-def]
    foreign = make_route(other_project)
    client.force_login(member("operator"))
    form = client.get(url("policies", project)).content.decode()
    assert f'<option value="{foreign.pk}"' not in form and str(foreign) not in form  # never offered
    response = client.post(url("policies", project), {**POLICY, "route": foreign.pk})
    assert response.status_code == 400 and errors_for(response.content.decode(), "route") == ["Unknown route."]
    assert not Policy.objects.exists()


def test_policies_need_the_operator_role(client, project, member) -> None:  # type: ignore[no-untyped-def]
    client.force_login(member("oncall"))
    assert client.get(url("policies", project)).status_code == 403
    assert client.post(url("policies", project), POLICY).status_code == 403
    assert not Policy.objects.exists()
    assert 'id="new-policy"' not in client.get("/routes/", {"project": project.slug}).content.decode()


def test_another_projects_policy_is_not_found(client, project, member, other_project) -> None:  # type: ignore[no-untyped-def]
    foreign = Policy.objects.create(project=other_project, name="theirs", action="rollback")
    user = member("operator")
    client.force_login(user)
    assert client.get(url("policies", project, foreign.pk)).status_code == 404
    assert client.post(url("policies", project, foreign.pk), POLICY).status_code == 404
    assert client.post(url("policies", project, foreign.pk, "delete")).status_code == 404
    foreign.refresh_from_db()
    assert foreign.name == "theirs"


# ---------------------------------------------------------------- budgets, SLOs, channels (admin)


def test_admin_manages_a_budget_with_audit(client, project, member) -> None:  # type: ignore[no-untyped-def]
    route = make_route(project)
    client.force_login(member("admin"))
    assert client.post(url("budgets", project), {"route": route.pk, "period": "day", "limit_usd": "0",
                                                 "on_exceed": "alert", "enabled": "on"}).status_code == 400
    response = client.post(url("budgets", project), {"route": route.pk, "period": "day", "limit_usd": "25.5",
                                                     "on_exceed": "alert", "enabled": "on"})
    assert response.status_code == 302 and response["Location"].startswith("/settings/")
    budget = Budget.objects.get(route=route)
    assert budget.limit_usd == Decimal("25.5")
    assert AuditEntry.objects.filter(project=project, event="budget.created").count() == 1
    form = client.get(url("budgets", project, budget.pk)).content.decode()
    assert 'name="limit_usd" value="25.5"' in form
    duplicate = client.post(url("budgets", project), {"route": route.pk, "period": "day", "limit_usd": "3",
                                                      "on_exceed": "alert"})
    assert duplicate.status_code == 400 and "must make a unique set" in duplicate.content.decode()
    assert client.post(url("budgets", project, budget.pk, "delete")).status_code == 302
    assert not Budget.objects.exists()


def test_invalid_budget_shows_the_reason_inline(client, project, member) -> None:  # type: ignore[no-untyped-def]
    route = make_route(project)
    client.force_login(member("admin"))
    response = client.post(url("budgets", project), {"route": route.pk, "period": "day", "limit_usd": "-1",
                                                     "on_exceed": "alert"})
    assert errors_for(response.content.decode(), "limit_usd") == ["A budget must be positive."]


def test_admin_manages_slos(client, project, member) -> None:  # type: ignore[no-untyped-def]
    client.force_login(member("admin"))
    good = {"route": "chat", "metric": "latency_p95", "threshold": "2500", "objective": "0.99"}
    assert client.post(url("slos", project), good).status_code == 302
    slo = ServiceLevelObjective.objects.get(project=project)
    assert (slo.route, slo.threshold, slo.objective) == ("chat", 2500.0, 0.99)
    again = client.post(url("slos", project), good)
    assert errors_for(again.content.decode(), "metric") == ["This route already has an objective for this metric."]
    bad = client.post(url("slos", project), {**good, "route": "summarise", "objective": "1.5", "threshold": "0"})
    assert bad.status_code == 400
    assert errors_for(bad.content.decode(), "objective") == [
        "The objective is a share between 0 and 1, e.g. 0.99."]
    assert client.post(url("slos", project, slo.pk), {**good, "threshold": "1800"}).status_code == 302
    slo.refresh_from_db()
    assert slo.threshold == 1800.0
    assert "p95 latency &lt; 1,800 ms" in client.get("/latency/", {"project": project.slug}).content.decode()
    assert client.post(url("slos", project, slo.pk, "delete")).status_code == 302
    assert not ServiceLevelObjective.objects.exists()


def test_admin_manages_a_notification_channel_and_its_secret_is_kept(client, project, member) -> None:  # type: ignore[no-untyped-def]
    client.force_login(member("admin"))
    missing = client.post(url("channels", project), {"name": "ops hook", "kind": "webhook", "min_severity": "info",
                                                     "enabled": "on", "config_url": ""})
    assert missing.status_code == 400 and "webhook channels need url" in missing.content.decode()
    not_http = client.post(url("channels", project), {"name": "ops hook", "kind": "webhook", "min_severity": "info",
                                                      "config_url": "ftp://example.invalid/x"})
    assert "url must be an http(s) URL" in not_http.content.decode()
    created = client.post(url("channels", project), {
        "name": "ops hook", "kind": "webhook", "min_severity": "warning", "enabled": "on",
        "config_url": "https://hooks.example.invalid/keel", "config_secret": "s3cret-value"})
    assert created.status_code == 302
    channel = NotificationChannel.objects.get(project=project)
    assert channel.config == {"url": "https://hooks.example.invalid/keel", "secret": "s3cret-value"}
    form = client.get(url("channels", project, channel.pk)).content.decode()
    assert "s3cret-value" not in form and 'value="https://hooks.example.invalid/keel"' in form
    client.post(url("channels", project, channel.pk), {"name": "ops hook", "kind": "webhook",
                                                       "min_severity": "critical", "enabled": "on",
                                                       "config_url": "https://hooks.example.invalid/v2"})
    channel.refresh_from_db()
    assert channel.min_severity == "critical"
    assert channel.config == {"url": "https://hooks.example.invalid/v2", "secret": "s3cret-value"}
    email = client.post(url("channels", project), {"name": "team mail", "kind": "email", "min_severity": "info",
                                                   "config_to": "a@example.invalid, b@example.invalid"})
    assert email.status_code == 302
    assert NotificationChannel.objects.get(name="team mail").config == {"to": ["a@example.invalid",
                                                                               "b@example.invalid"]}
    settings_page = client.get("/settings/", {"project": project.slug}).content.decode()
    assert 'data-channel="ops hook"' in settings_page and 'data-channel="team mail"' in settings_page
    client.post(url("channels", project, channel.pk), {"name": "ops hook", "kind": "slack", "min_severity": "info",
                                                       "config_url": "https://hooks.slack.invalid/T0"})
    channel.refresh_from_db()
    assert channel.config == {"url": "https://hooks.slack.invalid/T0"}  # the webhook secret is not carried over
    assert client.post(url("channels", project, channel.pk, "delete")).status_code == 302
    assert list(NotificationChannel.objects.values_list("name", flat=True)) == ["team mail"]


@pytest.mark.parametrize("kind", ["budgets", "slos", "channels"])
def test_admin_forms_need_the_admin_role(client, project, member, kind) -> None:  # type: ignore[no-untyped-def]
    client.force_login(member("operator"))
    assert client.get(url(kind, project)).status_code == 403
    assert client.post(url(kind, project), {"name": "x", "route": "chat", "kind": "webhook"}).status_code == 403
    assert not NotificationChannel.objects.exists() and not ServiceLevelObjective.objects.exists()


def test_another_projects_rows_are_not_found(client, project, member, other_project) -> None:  # type: ignore[no-untyped-def]
    channel = NotificationChannel.objects.create(project=other_project, name="theirs", kind="slack",
                                                 config={"url": "https://example.invalid"})
    slo = ServiceLevelObjective.objects.create(project=other_project, route="chat", metric="error_rate",
                                               threshold=0, objective=0.99)
    budget = Budget.objects.create(route=make_route(other_project), period="day", limit_usd=5)
    client.force_login(member("admin"))
    for kind, pk in (("channels", channel.pk), ("slos", slo.pk), ("budgets", budget.pk)):
        assert client.get(url(kind, project, pk)).status_code == 404, kind
        assert client.post(url(kind, project, pk, "delete")).status_code == 404, kind
    assert NotificationChannel.objects.filter(pk=channel.pk).exists() and Budget.objects.filter(pk=budget.pk).exists()
    settings_page = client.get("/settings/", {"project": project.slug}).content.decode()
    assert "theirs" not in settings_page


def test_unknown_form_is_not_found(client, project, member) -> None:  # type: ignore[no-untyped-def]
    client.force_login(member("admin"))
    assert client.get(url("detectors", project)).status_code == 404  # not this page's (another team's page)


def test_settings_posts_need_a_csrf_token(project, member) -> None:  # type: ignore[no-untyped-def]
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member("admin"))
    response = strict.post(url("slos", project), {"route": "chat", "metric": "error_rate", "threshold": "0",
                                                  "objective": "0.99"})
    assert response.status_code == 403 and not ServiceLevelObjective.objects.exists()


# ---------------------------------------------------------------- prices (shared: staff only)

PRICE = {"provider": "openai", "model_pattern": "form-test-model", "valid_from": "2024-01-01",
         "input_per_mtok": "1.25", "output_per_mtok": "5", "cached_input_per_mtok": "", "cache_write_per_mtok": "",
         "reasoning_per_mtok": "", "source": "vendor page, 2024-01"}


def test_staff_admin_manages_prices_and_clickhouse_gets_them(client, project, member, ch) -> None:  # type: ignore[no-untyped-def]
    user = member("admin")
    type(user).objects.filter(pk=user.pk).update(is_staff=True)
    client.force_login(user)
    prefilled = client.get(url("prices", project) + "&model_pattern=unpriced-x&provider=acme").content.decode()
    assert 'name="model_pattern" value="unpriced-x"' in prefilled and 'name="provider" value="acme"' in prefilled
    bad = client.post(url("prices", project), {**PRICE, "input_per_mtok": "-1"})
    assert bad.status_code == 400
    assert errors_for(bad.content.decode(), "input_per_mtok") == ["Prices cannot be negative."]
    assert client.post(url("prices", project), PRICE).status_code == 302
    price = Price.objects.get(model_pattern="form-test-model")
    assert price.input_per_mtok == Decimal("1.25") and price.cached_input_per_mtok is None
    synced = ch.query("SELECT argMax(input_per_mtok, version), argMax(deleted, version) FROM keel_prices "
                      "WHERE model = 'form-test-model' AND provider = 'openai' GROUP BY valid_from").result_rows
    assert synced == [(1.25, 0)]
    assert client.post(url("prices", project, price.pk), {**PRICE, "input_per_mtok": "2"}).status_code == 302
    price.refresh_from_db()
    assert price.input_per_mtok == Decimal("2")
    assert client.post(url("prices", project, price.pk, "delete")).status_code == 302
    assert not Price.objects.filter(pk=price.pk).exists()
    gone = ch.query("SELECT argMax(deleted, version) FROM keel_prices WHERE model = 'form-test-model' "
                    "AND provider = 'openai' GROUP BY valid_from").result_rows
    assert gone == [(1,)]


def test_price_forms_are_staff_only_even_for_admins(client, project, member) -> None:  # type: ignore[no-untyped-def]
    price = Price.objects.create(provider="openai", model_pattern="shared-model", valid_from="2024-01-01",
                                 input_per_mtok=1, output_per_mtok=2)
    client.force_login(member("admin"))
    assert client.get(url("prices", project)).status_code == 403
    assert client.post(url("prices", project), PRICE).status_code == 403
    assert client.post(url("prices", project, price.pk, "delete")).status_code == 403
    assert Price.objects.filter(pk=price.pk).exists() and not Price.objects.filter(model_pattern=PRICE["model_pattern"])
    page = client.get("/settings/", {"project": project.slug}).content.decode()
    assert 'data-price="shared-model"' in page and 'id="new-price"' not in page

