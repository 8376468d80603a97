"""Push adapters against local HTTP receivers: HMAC-signed webhook, LiteLLM admin-API call plan, failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from controlplane.gateways import litellm_admin, webhook
from controlplane.models import Action, AuditEntry, GatewayAdapter, GatewaySync
from controlplane.routing import services
from controlplane.routing.services import Actor, PushFailed

SECRET = "whsec-test-123"


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict[str, Any]] = []


@contextmanager
def receiver(status: int = 200) -> Iterator[tuple[Receiver, str]]:
    state = Receiver(status)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(state.status)
            self.end_headers()
            self.wfile.write(b'{"ok": true}' if state.status < 300 else b'{"error": "nope"}')

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def route(project):  # type: ignore[no-untyped-def]
    actor = Actor("user:setup")
    route = services.declare_route(project, "chat-default", actor=actor)
    for gid in ("v1", "v2"):
        services.declare_deployment(route, gid, actor=actor)
    return route


def test_webhook_is_signed_and_recorded(route) -> None:  # type: ignore[no-untyped-def]
    with receiver() as (state, url):
        adapter = GatewayAdapter.objects.create(project=route.project, name="gw", kind="webhook", url=url + "/hook",
                                                secret=SECRET)
        outcome = services.reroute(route, Actor("user:alice"), "canary", weights={"v1": 90, "v2": 10})
    (request,) = state.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert webhook.verify_signature(SECRET, headers["x-keel-timestamp"], request["body"], headers["x-keel-signature"])
    assert not webhook.verify_signature("wrong", headers["x-keel-timestamp"], request["body"],
                                        headers["x-keel-signature"])
    payload = json.loads(request["body"])
    assert payload["policy"]["weights"] == {"v1": 90.0, "v2": 10.0} and payload["action"]["kind"] == "reroute"
    sync = GatewaySync.objects.get(adapter=adapter)
    assert sync.ok and sync.action_id == outcome.action.pk and sync.calls[0]["status"] == 200


def test_failed_push_keeps_the_previous_revision_and_pages(route) -> None:  # type: ignore[no-untyped-def]
    with receiver(status=503) as (_, url):
        GatewayAdapter.objects.create(project=route.project, name="gw", kind="webhook", url=url, secret=SECRET)
        with pytest.raises(PushFailed):
            services.reroute(route, Actor("user:alice"), "", weights={"v2": 100})
    assert route.revisions.get(is_active=True).number == 1
    action = Action.objects.get(route=route)
    assert action.state == "failed" and "503" in action.error
    assert AuditEntry.objects.filter(project=route.project, event="action.failed").exists()
    page = AuditEntry.objects.get(project=route.project, event="page")
    from anomaly.models import Alert

    alert = Alert.objects.get(project=route.project, detector="routing")  # raised through anomaly.alerts
    assert page.alert_id == alert.pk and alert.severity == "critical" and "Gateway push failed" in alert.title
    from controlplane.routing import policies

    assert policies.on_alert_fired(alert.pk) == []  # a page never triggers remediation itself
    route.refresh_from_db()
    assert route.version == 1


def test_unreachable_gateway_fails_cleanly(route) -> None:  # type: ignore[no-untyped-def]
    GatewayAdapter.objects.create(project=route.project, name="gone", kind="litellm_admin",
                                  url="http://127.0.0.1:9", secret="sk", timeout_s=1)
    with pytest.raises(PushFailed):
        services.pause(route, Actor("user:alice"), "", deployment="v2")
    assert route.revisions.get(is_active=True).paused == []


def test_litellm_admin_plan_and_push(route) -> None:  # type: ignore[no-untyped-def]
    services.reroute(route, Actor("user:a"), "", weights={"v1": 50, "v2": 50})
    with receiver() as (state, url):
        adapter = GatewayAdapter.objects.create(project=route.project, name="litellm", kind="litellm_admin", url=url,
                                                secret="sk-master")
        services.pause(route, Actor("user:a"), "v2 broken", deployment="v2")
        services.resume(route, Actor("user:a"), "v2 fixed", deployment="v2")
    calls = [(r["path"], json.loads(r["body"])) for r in state.requests]
    assert calls[:3] == [
        ("/model/update", {"model_info": {"id": "v1"}, "litellm_params": {"weight": 50.0}}),
        ("/model/update", {"model_info": {"id": "v2"}, "litellm_params": {"weight": 50.0}}),
        ("/model/block", {"model_id": "v2"}),
    ]
    assert calls[-1] == ("/model/unblock", {"model_id": "v2"})
    assert all(r["headers"]["Authorization"] == "Bearer sk-master" for r in state.requests)
    assert GatewaySync.objects.filter(adapter=adapter, ok=True).count() == 2
    assert litellm_admin.plan(route.revisions.get(number=1), None)[0][0] == "/model/update"
