"""Tenant isolation over every API endpoint, every dashboard page and the WebSocket: project A never sees or
changes project B.

The API URLs are enumerated from Django's resolver (a new endpoint without an entry in ``B_IDS`` fails the test,
so it cannot slip past). Project B gets one object of every kind, each carrying a marker string; A's admin key
and a session user who is admin of A only then call every endpoint with every method, on A's own URLs and on
B's ids and ``?project=<B>``. No answer may contain the marker or B's tenant id, no detail URL of B may answer
2xx, and afterwards B's objects are exactly as they were. Ingest cannot be redirected to B either; that is
covered by tests/ingestion/test_receiver.py::test_client_cannot_move_spans_into_another_project, and a
non-member's WebSocket by tests/dashboards/test_live_events.py (here: the full ASGI stack with a session cookie).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from controlplane.apikeys import issue_key

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = "bsecret" + uuid.uuid4().hex[:8]


@dataclass
class World:
    a: Any
    b: Any
    a_key: str
    b_key: str
    a_user: Any
    b_objects: dict[str, Any]
    b_trace_id: str


def _walk(patterns: list[URLPattern | URLResolver], prefix: str = "") -> list[tuple[str, URLPattern]]:
    out: list[tuple[str, URLPattern]] = []
    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            out += _walk(p.url_patterns, route)
        else:
            out.append((route, p))
    return out


def api_patterns() -> list[tuple[str, URLPattern]]:
    return [(route, p) for route, p in _walk(get_resolver().url_patterns) if route.startswith("api/v1/")]


def page_patterns() -> list[tuple[str, URLPattern]]:
    return [(route, p) for route, p in _walk(get_resolver().url_patterns)
            if not route.startswith(("api/", "admin/", "^", "healthz", "readyz", "metrics", "login/", "logout/",
                                     "assets/"))]


def _make_world(ch: Any, django_user_model: Any) -> World:
    from anomaly import alerts
    from anomaly.models import DetectorConfig, NotificationChannel, Silence
    from controlplane.models import Membership, Project
    from controlplane.models.routing import Action, Budget, GatewayAdapter, GatewaySync, Policy
    from controlplane.routing import services
    from ingestion.models import Price

    a = Project.objects.create(slug=f"iso-a-{uuid.uuid4().hex[:6]}", name="A")
    b = Project.objects.create(slug=f"iso-b-{uuid.uuid4().hex[:6]}", name=f"B {MARKER}")
    actor = services.Actor("user:setup")
    route = services.declare_route(b, f"route-{MARKER}", actor=actor)
    services.declare_deployment(route, f"dep1-{MARKER}", actor=actor, provider="openai", model="m1", model_version="m1")
    services.declare_deployment(route, f"dep2-{MARKER}", actor=actor, provider="openai", model="m2", model_version="m2")
    route.refresh_from_db()
    alert = alerts.raise_alert(project=b, title=f"alert {MARKER}", detail=MARKER, route=route.name)
    assert alert is not None
    adapter = GatewayAdapter.objects.create(project=b, name=f"gw-{MARKER}", kind="webhook",
                                            url="http://127.0.0.1:9/hook", secret=MARKER)
    action = Action.objects.create(project=b, route=route, kind="rollback", state="failed", actor=f"user:{MARKER}")
    sync = GatewaySync.objects.create(adapter=adapter, action=action, error=MARKER)
    b_user = django_user_model.objects.create_user(f"b-admin-{uuid.uuid4().hex[:6]}", password="pw-123456789-b")
    b_member = Membership.objects.create(user=b_user, project=b, role="admin")
    objects = {
        "route": route,
        "alert": alert,
        "action": action,
        "adapter": adapter,
        "sync": sync,
        "policy": Policy.objects.create(project=b, name=f"policy-{MARKER}", route=route, action="rollback"),
        "budget": Budget.objects.create(route=route, limit_usd=Decimal("12.5")),
        "detector": DetectorConfig.objects.create(project=b, kind="latency_p95", params={"note": MARKER}),
        "channel": NotificationChannel.objects.create(project=b, name=f"chan-{MARKER}", kind="webhook",
                                                      config={"url": f"http://127.0.0.1:9/{MARKER}"}),
        "silence": Silence.objects.create(project=b, route=route.name, comment=MARKER,
                                          starts_at=datetime.now(UTC), ends_at=datetime.now(UTC) + timedelta(days=1)),
        "member": b_member,
        "deployment": route.deployments.order_by("pk").first(),
        # reference data shared by every project (not B's): readable by all, writable by staff only
        "price": Price.objects.create(provider="openai", model_pattern=f"iso-{MARKER[-6:]}",
                                      valid_from=date(2026, 1, 1), input_per_mtok=Decimal("1"),
                                      output_per_mtok=Decimal("2")),
    }
    b_key = issue_key(b, ["ingest", "read", "admin"], name=f"key-{MARKER}")
    objects["key"] = b_key.api_key if hasattr(b_key, "api_key") else b.api_keys.get()
    trace_id = uuid.uuid4().hex
    ch.insert("llm_calls", [[b.tenant_id, datetime.now(UTC), trace_id, uuid.uuid4().hex[:16], f"svc-{MARKER}", "",
                             route.name, "openai", "m1", "m1", "chat", "chat", "Ok", 0, 12.0, 10, 5, 0.01, 1,
                             "client", f"dep1-{MARKER}"]],
              column_names=["ProjectId", "Timestamp", "TraceId", "SpanId", "ServiceName", "Environment", "Route",
                            "Provider", "RequestModel", "ResponseModel", "Operation", "SpanName", "StatusCode",
                            "IsError", "DurationMs", "InputTokens", "OutputTokens", "TotalCost", "Priced",
                            "CostSource", "GatewayDeploymentId"])
    a_user = django_user_model.objects.create_user(f"a-admin-{uuid.uuid4().hex[:6]}", password="pw-123456789-a")
    Membership.objects.create(user=a_user, project=a, role="admin")
    return World(a, b, issue_key(a, ["ingest", "read", "admin"]).secret, b_key.secret, a_user, objects, trace_id)


@pytest.fixture
def world(ch, django_user_model) -> World:  # type: ignore[no-untyped-def]
    return _make_world(ch, django_user_model)


# url name -> kwarg -> which of B's objects supplies the value
B_IDS: dict[str, dict[str, str]] = {
    "api-key-revoke": {"key_id": "key"},
    "api-member": {"member_id": "member"},
    "api-route": {"route_id": "route"},
    "api-route-deployments": {"route_id": "route"},
    "api-route-deployment": {"route_id": "route", "deployment_id": "deployment"},
    "api-route-revisions": {"route_id": "route"},
    "api-route-rollback": {"route_id": "route"},
    "api-route-reroute": {"route_id": "route"},
    "api-route-pause": {"route_id": "route"},
    "api-route-resume": {"route_id": "route"},
    "api-route-preview": {"route_id": "route"},
    "api-route-timeline": {"route_id": "route"},
    "api-trace": {"trace_id": "trace"},
    "api-action": {"action_id": "action"},
    "api-policy": {"pk": "policy"},
    "api-policy-approve": {"pk": "policy"},
    "api-budget": {"pk": "budget"},
    "api-gateway-adapter": {"pk": "adapter"},
    "api-gateway-syncs": {"adapter_id": "adapter"},
    "api-alert": {"alert_id": "alert"},
    "api-alert-ack": {"alert_id": "alert"},
    "api-alert-snooze": {"alert_id": "alert"},
    "api-alert-resolve": {"alert_id": "alert"},
    "api-alert-assign": {"alert_id": "alert"},
    "api-detector": {"kind": "detector"},
    "api-channel": {"pk": "channel"},
    "api-silence": {"pk": "silence"},
    "price-detail": {"pk": "price"},
}
# URLs whose ids are not project-owned: A's own answer is expected (never B's data, never a non-staff write).
SHARED = {"api-detector", "price-detail"}

PAGE_IDS: dict[str, dict[str, str]] = {
    "trace-detail": {"trace_id": "trace"},
    "alert-detail": {"alert_id": "alert"},
    "alert-action": {"alert_id": "alert", "verb": "ack"},
    "alert-approve": {"alert_id": "alert", "policy_id": "policy"},
    "route-detail": {"route_id": "route"},
    "route-rollback": {"route_id": "route"},
    "route-reroute": {"route_id": "route"},
    "settings-revoke-key": {"key_id": "key"},
    "route-reroute-preview": {"route_id": "route"},
    # in-app settings forms: one kind stands for all (each kind's 404 for another project: test_settings_forms)
    "config-new": {"slug": "channels"},
    "config-edit": {"slug": "channels", "pk": "channel"},
    "config-delete": {"slug": "channels", "pk": "channel"},
}

METHODS = ("get", "post", "put", "patch", "delete")


def _fill(route: str, kwargs: dict[str, str], world: World) -> str:
    import re

    def value(name: str) -> str:
        source = kwargs[name]
        if source == "trace":
            return world.b_trace_id
        if source == "detector":
            return str(world.b_objects["detector"].kind)
        if source in ("ack", "channels"):
            return source
        return str(world.b_objects[source].pk)

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: value(m.group(1)), route)


def _snapshot(world: World) -> dict[str, Any]:
    """Every field of every B object, to prove nothing of B changed."""
    from django.forms.models import model_to_dict

    out = {}
    for name, obj in world.b_objects.items():
        fresh = type(obj).objects.get(pk=obj.pk)
        out[name] = {k: str(v) for k, v in model_to_dict(fresh).items()}
    out["revisions"] = list(world.b_objects["route"].revisions.values_list("pk", flat=True))
    out["counts"] = {
        "actions": world.b.routing_actions.count(), "alerts": world.b.alerts.count(),
        "keys": world.b.api_keys.count(), "members": world.b.memberships.count(),
        "policies": world.b.remediation_policies.count(), "channels": world.b.notification_channels.count(),
        "silences": world.b.silences.count(), "adapters": world.b.gateway_adapters.count(),
    }
    return out


def _clients(world: World) -> dict[str, Any]:
    key_client = APIClient()
    key_client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.a_key}")
    session = APIClient()
    session.force_login(world.a_user)
    return {"a-admin-key": key_client, "a-admin-session": session}


def _leaks(response: Any, world: World) -> bool:
    body = response.content.decode(errors="replace")
    return MARKER in body or world.b.tenant_id in body or world.b_trace_id in body


def test_every_api_endpoint_is_covered_by_this_test() -> None:
    names = {p.name for _route, p in api_patterns()}
    with_ids = {p.name for route, p in api_patterns() if "<" in route}
    assert with_ids <= set(B_IDS), f"new API endpoints with ids need a B object here: {with_ids - set(B_IDS)}"
    assert len(names) >= 40, names  # the resolver walk found the API


def test_no_api_endpoint_shows_or_changes_project_b(world: World) -> None:
    before = _snapshot(world)
    problems: list[str] = []
    body = {"project": world.b.slug, "reason": "x", "weights": {}, "deployment": "x", "until": "2030-01-01T00:00:00Z",
            "name": "x", "kind": "webhook", "url": "http://127.0.0.1:9/", "route": world.b_objects["route"].pk,
            "role": "admin", "username": world.a_user.username, "scopes": ["admin"]}
    checked = 0
    for route, pattern in api_patterns():
        # detectors/<kind>: kinds are names every project has (A's own config answers); prices are shared
        own_ids = "<" not in route or pattern.name in SHARED
        url = _fill(route, B_IDS.get(pattern.name or "", {}), world)
        for who, client in _clients(world).items():
            for query in ("", f"?project={world.b.slug}"):
                for method in METHODS:
                    if own_ids and method != "get" and not query and pattern.name not in SHARED:
                        continue  # writing to A's own lists is A's business; with ?project=B it must fail
                    response = getattr(client, method)(url + query, body, format="json")
                    checked += 1
                    where = f"{who} {method.upper()} {url}{query} -> {response.status_code}"
                    if response.status_code >= 500:
                        problems.append(f"{where}: server error")
                    if _leaks(response, world):
                        problems.append(f"{where}: shows B's data")
                    if not own_ids and response.status_code < 400:
                        problems.append(f"{where}: B's object answered")
                    if who.endswith("session") and own_ids and query and method != "get" and response.status_code < 400:
                        problems.append(f"{where}: a write with ?project=B was accepted")
                    # A key is bound to its project: ?project=B is ignored and a write lands in A (the snapshot of
                    # B below proves nothing reached B).
    assert checked > 400
    assert not problems, "\n".join(problems)
    assert _snapshot(world) == before


def test_api_lists_show_only_own_data(world: World) -> None:
    """The positive control: B's own key does see B's marker on the same list endpoints A was refused."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.b_key}")
    for path in ("/api/v1/calls", "/api/v1/routes", "/api/v1/alerts", "/api/v1/policies", "/api/v1/silences",
                 "/api/v1/notification-channels", "/api/v1/actions"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.content[:300])
        assert MARKER in response.content.decode(), path


def test_no_dashboard_page_shows_or_changes_project_b(world: World) -> None:
    before = _snapshot(world)
    client = Client()
    client.force_login(world.a_user)
    problems: list[str] = []
    for route, pattern in page_patterns():
        kwargs = PAGE_IDS.get(pattern.name or "", {})
        assert "<" not in route or kwargs, f"page {pattern.name} needs a B id in PAGE_IDS"
        url = _fill(route, kwargs, world)
        for query in (f"?project={world.b.slug}", ""):
            for method in ("get", "post"):
                response = getattr(client, method)(url + query, {"reason": "x", "project": world.b.slug})
                where = f"{method.upper()} {url}{query} -> {response.status_code}"
                if response.status_code >= 500:
                    problems.append(f"{where}: server error")
                if _leaks(response, world):
                    problems.append(f"{where}: shows B's data")
                if query and method == "get" and response.status_code == 200:
                    problems.append(f"{where}: B's page answered")
    assert not problems, "\n".join(problems)
    assert _snapshot(world) == before


def test_member_of_b_sees_b_pages_positive_control(world: World) -> None:
    client = Client()
    client.force_login(world.b_objects["member"].user)
    response = client.get(f"/alerts/?project={world.b.slug}")
    assert response.status_code == 200
    assert MARKER in response.content.decode()


@pytest.mark.asyncio
async def test_websocket_through_the_asgi_stack_refuses_another_project(world: World) -> None:
    from asgiref.sync import sync_to_async

    from channels.testing import WebsocketCommunicator

    from controlplane.asgi import application

    client = Client()
    await sync_to_async(client.force_login)(world.a_user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"cookie", cookie), (b"origin", b"http://localhost"), (b"host", b"localhost")]
    results = {}
    for slug in (world.a.slug, world.b.slug):
        ws = WebsocketCommunicator(application, f"/ws/projects/{slug}/events/", headers=headers)
        connected, _ = await ws.connect()
        results[slug] = connected
        await ws.disconnect()
    assert results == {world.a.slug: True, world.b.slug: False}
