"""Routing API: roles, 409 on a stale version, double submit, preview, timeline, audit export."""

from __future__ import annotations

import csv
import io
import json

import pytest

from controlplane.models import Action, RouteRevision

pytestmark = pytest.mark.urls("tests.routing.urls")


def test_viewer_reads_but_cannot_act(route, viewer_client) -> None:  # type: ignore[no-untyped-def]
    listed = viewer_client.get("/api/v1/routes")
    assert listed.status_code == 200
    (item,) = listed.json()
    assert item["name"] == "chat-default" and item["active_revision"]["number"] == 1
    refused = viewer_client.post(f"/api/v1/routes/{route.pk}/rollback", {"reason": "x"}, format="json")
    assert refused.status_code == 403 and "detail" in refused.json()
    assert route.revisions.get(is_active=True).number == 1


def test_operator_reroutes_and_rolls_back(route, operator_client) -> None:  # type: ignore[no-untyped-def]
    r = operator_client.post(f"/api/v1/routes/{route.pk}/reroute",
                             {"weights": {"chat-default-v2": 100}, "reason": "slow", "expected_version": 1},
                             format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["state"] == "applied" and body["before_revision"] == 1 and body["after_revision"] == 2
    assert body["actor"].startswith("user:operator-")
    assert set(body["preview"]) >= {"current", "target", "deployments"}
    back = operator_client.post(f"/api/v1/routes/{route.pk}/rollback", {"reason": "undo"}, format="json")
    assert back.status_code == 201 and back.json()["after_revision"] == 1


def test_second_operator_with_a_stale_version_gets_409_and_the_current_state(  # type: ignore[no-untyped-def]
        route, operator_client, project, django_user_model) -> None:
    from tests.routing.conftest import _client_for

    other = _client_for(project, "admin", django_user_model)
    first = operator_client.post(f"/api/v1/routes/{route.pk}/reroute",
                                 {"weights": {"chat-default-v2": 100}, "expected_version": 1}, format="json")
    assert first.status_code == 201
    second = other.post(f"/api/v1/routes/{route.pk}/pause", {"deployment": "chat-default-v1", "expected_version": 1},
                        format="json")
    assert second.status_code == 409
    assert "version 2" in second.json()["detail"]
    assert second.json()["current"]["active_revision"]["weights"] == {"chat-default-v1": 0.0, "chat-default-v2": 100.0}
    assert route.revisions.get(is_active=True).number == 2


def test_double_submit_with_an_idempotency_key_makes_one_revision(route, operator_client) -> None:  # type: ignore[no-untyped-def]
    payload = {"weights": {"chat-default-v1": 90, "chat-default-v2": 10}, "reason": "canary"}
    a = operator_client.post(f"/api/v1/routes/{route.pk}/reroute", payload, format="json", HTTP_IDEMPOTENCY_KEY="c1")
    b = operator_client.post(f"/api/v1/routes/{route.pk}/reroute", payload, format="json", HTTP_IDEMPOTENCY_KEY="c1")
    assert (a.status_code, b.status_code) == (201, 200)
    assert b.json()["duplicate"] is True and b.json()["id"] == a.json()["id"]
    assert RouteRevision.objects.filter(route=route).count() == 2


@pytest.mark.parametrize(("path", "payload", "message"), [
    ("reroute", {"weights": {"chat-default-v1": 60, "chat-default-v2": 60}}, "sum to 100"),
    ("reroute", {"weights": {"nope": 100}}, "Unknown deployment id"),
    ("pause", {"deployment": "chat-default-v1"}, "last healthy deployment"),
    ("resume", {"deployment": "chat-default-v2"}, "not paused"),
    ("rollback", {"to_revision": 7}, "no revision 7"),
    ("rollback", {}, "no earlier revision"),
    ("reroute", {"weights": "all of it"}, "weights"),
])
def test_bad_input_is_a_clear_400_and_changes_nothing(route, operator_client, path, payload, message) -> None:  # type: ignore[no-untyped-def]
    r = operator_client.post(f"/api/v1/routes/{route.pk}/{path}", payload, format="json")
    assert r.status_code == 400
    assert message in json.dumps(r.json()["detail"])
    assert route.revisions.get(is_active=True).number == 1
    assert not Action.objects.filter(route=route).exists()


def test_preview_compares_target_with_current(route, operator_client, insert_calls) -> None:  # type: ignore[no-untyped-def]
    tenant = route.project.tenant_id
    insert_calls(tenant, deployment="chat-default-v1", model="model-v1", n=20, latency_ms=900, errors=4, cost=0.002)
    insert_calls(tenant, deployment="chat-default-v2", model="model-v2", n=10, latency_ms=200, cost=0.001)
    r = operator_client.get(f"/api/v1/routes/{route.pk}/preview?deployment=chat-default-v2")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["current"]["calls"] == 20 and body["current"]["error_rate"] == pytest.approx(0.2)
    assert body["target"]["calls"] == 10 and body["target"]["error_rate"] == 0
    assert body["target"]["cost_per_call"] == pytest.approx(0.001)
    assert body["current"]["latency_p95_ms"] == pytest.approx(900) and body["target"]["latency_p95_ms"] < 300
    assert operator_client.get(f"/api/v1/routes/{route.pk}/preview?deployment=x").status_code == 400


def test_timeline_shares_and_markers(route, operator_client, insert_calls) -> None:  # type: ignore[no-untyped-def]
    tenant = route.project.tenant_id
    insert_calls(tenant, model="model-v1", n=30)
    insert_calls(tenant, deployment="chat-default-v2", model="model-v2", n=10)
    operator_client.post(f"/api/v1/routes/{route.pk}/reroute", {"weights": {"chat-default-v2": 100}}, format="json")
    body = operator_client.get(f"/api/v1/routes/{route.pk}/timeline?hours=3").json()
    shares = {model: sum(p["share"] for p in points) for model, points in body["series"].items()}
    assert shares == {"model-v1": pytest.approx(0.75), "model-v2": pytest.approx(0.25)}
    assert [(m["kind"], m["from_revision"], m["to_revision"]) for m in body["markers"]] == [("reroute", 1, 2)]


def test_audit_log_lists_and_exports(route, operator_client, viewer_client) -> None:  # type: ignore[no-untyped-def]
    operator_client.post(f"/api/v1/routes/{route.pk}/reroute", {"weights": {"chat-default-v2": 100},
                                                               "reason": "why, with a comma"}, format="json")
    listed = viewer_client.get("/api/v1/audit").json()
    assert listed[0]["event"] == "action.applied" and listed[0]["data"]["reason"] == "why, with a comma"
    as_csv = viewer_client.get("/api/v1/audit?format=csv")
    assert as_csv.status_code == 200 and as_csv["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode())))
    assert rows[0]["event"] == "action.applied" and json.loads(rows[0]["data"])["reason"] == "why, with a comma"
    as_json = viewer_client.get("/api/v1/audit?format=json")
    assert [e["event"] for e in json.loads(as_json.content)] == [r["event"] for r in rows]
    assert viewer_client.get("/api/v1/audit?format=xml").status_code == 400


def test_policies_are_project_scoped_and_validated(route, operator_client) -> None:  # type: ignore[no-untyped-def]
    bad = operator_client.post("/api/v1/policies", {"name": "p", "action": "reroute", "mode": "auto"}, format="json")
    assert bad.status_code == 400 and "reroute_to" in json.dumps(bad.json())
    v2 = route.deployments.get(gateway_id="chat-default-v2")
    ok = operator_client.post("/api/v1/policies", {"name": "p", "action": "reroute", "mode": "auto",
                                                   "reroute_to": v2.pk, "route": route.pk}, format="json")
    assert ok.status_code == 201, ok.json()
    assert [p["name"] for p in operator_client.get("/api/v1/policies").json()] == ["p"]


def test_unhealthy_deployment_is_never_a_target(route, operator_client, viewer_client) -> None:  # type: ignore[no-untyped-def]
    v2 = route.deployments.get(gateway_id="chat-default-v2")
    url = f"/api/v1/routes/{route.pk}/deployments/{v2.pk}"
    assert viewer_client.patch(url, {"healthy": False}, format="json").status_code == 403
    marked = operator_client.patch(url, {"healthy": False, "reason": "500s"}, format="json")
    assert marked.status_code == 200 and marked.json()["healthy"] is False
    refused = operator_client.post(f"/api/v1/routes/{route.pk}/reroute", {"weights": {"chat-default-v2": 100}},
                                   format="json")
    assert refused.status_code == 400 and "no healthy" in refused.json()["detail"]
    assert route.revisions.get(is_active=True).number == 1
