"""Routing write paths: revisions, actions, audit, and every kind of bad input leaving the route unchanged."""

from __future__ import annotations

import pytest

from django.db import IntegrityError, transaction

from controlplane.models import Action, AuditEntry, RouteRevision
from controlplane.models.routing import ImmutableRecord
from controlplane.routing import policy_document, services
from controlplane.routing.services import Actor, RoutingError, StaleVersion

ALICE = Actor("user:alice")
BOB = Actor("user:bob")


def active(route):  # type: ignore[no-untyped-def]
    return route.revisions.get(is_active=True)


def test_first_deployment_gets_an_initial_revision(route) -> None:  # type: ignore[no-untyped-def]
    revision = active(route)
    assert revision.number == 1
    assert revision.weights == {"chat-default-v1": 100.0}
    assert route.version == 1


def test_reroute_then_rollback_restores_the_previous_revision(route) -> None:  # type: ignore[no-untyped-def]
    before_doc = policy_document.current_version(route.project_id)
    outcome = services.reroute(route, ALICE, "v1 is slow", weights={"chat-default-v2": 100})
    assert outcome.action.state == "applied" and not outcome.duplicate
    assert active(route).number == 2
    assert active(route).effective_weights() == {"chat-default-v2": 100.0}
    assert policy_document.current_version(route.project_id) == before_doc + 1

    canary = services.reroute(route, BOB, "canary", weights={"chat-default-v1": 90, "chat-default-v2": 10})
    assert active(route).number == 3 and canary.action.before_revision.number == 2

    back = services.rollback(route, ALICE, "canary bad")
    assert back.action.kind == "rollback"
    assert active(route).number == 2  # re-activated, not copied
    assert RouteRevision.objects.filter(route=route).count() == 3

    chosen = services.rollback(route, ALICE, "all the way back", to_revision=1)
    assert chosen.action.after_revision.number == 1 and active(route).number == 1

    events = list(AuditEntry.objects.filter(project=route.project, event="action.applied").order_by("id"))
    assert [e.data["after"] for e in events] == [2, 3, 2, 1]
    assert events[0].actor == "user:alice" and events[0].data["reason"] == "v1 is slow"


def test_pause_and_resume(route) -> None:  # type: ignore[no-untyped-def]
    services.reroute(route, ALICE, "split", weights={"chat-default-v1": 50, "chat-default-v2": 50})
    services.pause(route, ALICE, "v2 erroring", deployment="chat-default-v2")
    assert active(route).effective_weights() == {"chat-default-v1": 50.0}
    assert active(route).paused == ["chat-default-v2"]
    with pytest.raises(RoutingError, match="last healthy deployment"):
        services.pause(route, ALICE, "", deployment="chat-default-v1")
    services.resume(route, ALICE, "fixed", deployment="chat-default-v2")
    assert active(route).paused == [] and len(active(route).effective_weights()) == 2


@pytest.mark.parametrize(("weights", "message"), [
    ({"chat-default-v1": 50, "chat-default-v2": 40}, "sum to 100"),
    ({"chat-default-v1": 150, "chat-default-v2": -50}, "percentages|between 0 and 100"),
    ({"chat-default-v1": "lots"}, "must be a number"),
    ({"chat-default-v9": 100}, "Unknown deployment id"),
    ({}, "non-empty"),
    ({"chat-default-v1": float("nan")}, "must be a number"),
])
def test_bad_weights_are_refused_and_change_nothing(route, weights, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RoutingError, match=message):
        services.reroute(route, ALICE, "bad", weights=weights)
    assert active(route).number == 1
    assert not Action.objects.filter(route=route).exists()
    assert RouteRevision.objects.filter(route=route).count() == 1


def test_no_healthy_target_is_refused(route) -> None:  # type: ignore[no-untyped-def]
    route.deployments.filter(gateway_id="chat-default-v2").update(healthy=False)
    with pytest.raises(RoutingError, match="no healthy"):
        services.reroute(route, ALICE, "", weights={"chat-default-v2": 100})
    assert active(route).number == 1


def test_double_click_creates_one_revision(route) -> None:  # type: ignore[no-untyped-def]
    first = services.reroute(route, ALICE, "go", weights={"chat-default-v2": 100}, expected_version=1)
    second = services.reroute(route, ALICE, "go", weights={"chat-default-v2": 100}, expected_version=1)
    assert second.duplicate and second.action.pk == first.action.pk
    keyed = services.rollback(route, ALICE, "back", idempotency_key="k-1")
    again = services.rollback(route, BOB, "back again", idempotency_key="k-1")
    assert again.duplicate and again.action.pk == keyed.action.pk
    assert RouteRevision.objects.filter(route=route).count() == 2
    assert Action.objects.filter(route=route).count() == 2


def test_stale_version_is_refused_with_the_current_state(route) -> None:  # type: ignore[no-untyped-def]
    services.reroute(route, ALICE, "first", weights={"chat-default-v2": 100}, expected_version=1)
    with pytest.raises(StaleVersion) as caught:
        services.reroute(route, BOB, "second", weights={"chat-default-v1": 100}, expected_version=1)
    assert caught.value.route.version == 2
    assert active(route).effective_weights() == {"chat-default-v2": 100.0}


def test_one_active_revision_is_a_database_constraint(route) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError), transaction.atomic():
        RouteRevision.objects.create(route=route, number=9, weights={"chat-default-v2": 100}, is_active=True)


def test_revisions_and_audit_entries_are_immutable(route) -> None:  # type: ignore[no-untyped-def]
    revision = active(route)
    revision.weights = {"chat-default-v2": 100}
    with pytest.raises(ImmutableRecord):
        revision.save()
    entry = AuditEntry.objects.filter(project=route.project).first()
    entry.summary = "rewritten"
    with pytest.raises(ImmutableRecord):
        entry.save()
    with pytest.raises(ImmutableRecord):
        entry.delete()
    with pytest.raises(ImmutableRecord):
        AuditEntry.objects.filter(project=route.project).update(summary="x")
    with pytest.raises(ImmutableRecord):
        AuditEntry.objects.filter(project=route.project).delete()


def test_policy_document_lists_active_weights(route) -> None:  # type: ignore[no-untyped-def]
    services.reroute(route, ALICE, "", weights={"chat-default-v1": 90, "chat-default-v2": 10})
    doc = policy_document.build(route.project)
    assert doc["version"] == policy_document.current_version(route.project_id)
    (section,) = doc["routes"]
    assert section["route"] == "chat-default" and section["revision"] == 2
    assert section["weights"] == {"chat-default-v1": 90.0, "chat-default-v2": 10.0}


def test_discovery_from_spans_is_tenant_scoped(project, insert_calls) -> None:  # type: ignore[no-untyped-def]
    from controlplane.models import Project, Route

    other = Project.objects.create(slug="other-tenant", name="other")
    insert_calls(project.tenant_id, route="summarise", deployment="sum-a", model="model-a", n=3)
    insert_calls(project.tenant_id, route="summarise", deployment="", model="model-b", n=2)
    insert_calls(other.tenant_id, route="secret-route", deployment="x", n=2)
    created = services.discover_from_spans(project)
    assert sorted(d.gateway_id for d in created) == ["openai/model-b", "sum-a"]
    assert list(Route.objects.filter(project=project).values_list("name", flat=True)) == ["summarise"]
    route = Route.objects.get(project=project)
    assert route.discovered and route.revisions.get(is_active=True).number == 1
    assert services.discover_from_spans(project) == []  # idempotent
