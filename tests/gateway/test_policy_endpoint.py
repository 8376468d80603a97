"""The pull contract: auth, ETag/304, long-poll that answers as soon as the version moves."""

from __future__ import annotations

import asyncio
import time

import pytest

from django.db import connection
from django.test import AsyncClient

from controlplane.apikeys import issue_key
from controlplane.routing import services

pytestmark = pytest.mark.urls("tests.routing.urls")


class KeyClient:
    """AsyncClient that sends the bearer key on every request (constructor headers are not applied to ASGI)."""

    def __init__(self, key: str | None = None, raw: str | None = None) -> None:
        self.client = AsyncClient()
        self.auth = raw if raw is not None else (f"Bearer {key}" if key else "")

    async def get(self, path: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        merged = {**({"Authorization": self.auth} if self.auth else {}), **(headers or {})}
        return await self.client.get(path, headers=merged)


@pytest.fixture
def setup(transactional_db, project):  # type: ignore[no-untyped-def]
    actor = services.Actor("user:setup")
    route = services.declare_route(project, "chat-default", actor=actor)
    for gid in ("v1", "v2"):
        services.declare_deployment(route, gid, actor=actor)
    return route, issue_key(project, ["read"]).secret


async def test_etag_and_304(setup) -> None:  # type: ignore[no-untyped-def]
    _, key = setup
    client = KeyClient(key)
    first = await client.get("/api/v1/routing/policy")
    assert first.status_code == 200
    doc = first.json()
    assert doc["routes"][0]["weights"] == {"v1": 100.0} and first["ETag"] == f'"keel-policy-{doc["version"]}"'
    again = await client.get("/api/v1/routing/policy", headers={"If-None-Match": first["ETag"]})
    assert again.status_code == 304 and again["ETag"] == first["ETag"]


async def test_long_poll_returns_when_the_version_changes(setup) -> None:  # type: ignore[no-untyped-def]
    route, key = setup
    client = KeyClient(key)
    etag = (await client.get("/api/v1/routing/policy"))["ETag"]

    def reroute() -> None:
        try:
            services.reroute(route, services.Actor("user:x"), "", weights={"v2": 100})
        finally:
            connection.close()

    async def change_soon() -> None:
        await asyncio.sleep(0.8)
        await asyncio.to_thread(reroute)  # another thread, as another web request would be

    started = time.monotonic()
    response, _ = await asyncio.gather(
        client.get("/api/v1/routing/policy?wait=10", headers={"If-None-Match": etag}), change_soon())
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response["ETag"] != etag
    assert response.json()["routes"][0]["weights"] == {"v2": 100.0}
    assert 0.7 < elapsed < 5


async def test_long_poll_times_out_with_304(setup) -> None:  # type: ignore[no-untyped-def]
    _, key = setup
    client = KeyClient(key)
    etag = (await client.get("/api/v1/routing/policy"))["ETag"]
    response = await client.get("/api/v1/routing/policy?wait=1", headers={"If-None-Match": etag})
    assert response.status_code == 304


@pytest.mark.parametrize(("header", "status"), [("", 401), ("Bearer keel_nope_nope", 401), ("Basic abc", 401)])
async def test_auth_is_required(setup, header, status) -> None:  # type: ignore[no-untyped-def]
    client = KeyClient(raw=header)
    response = await client.get("/api/v1/routing/policy")
    assert response.status_code == status and "detail" in response.json()


@pytest.fixture
def other_keys(transactional_db, project):  # type: ignore[no-untyped-def]
    from controlplane.models import Project

    other = Project.objects.create(slug="other-proj", name="other")
    return issue_key(project, ["ingest"]).secret, issue_key(other, ["read"]).secret


async def test_ingest_only_key_is_forbidden_and_projects_are_isolated(setup, other_keys) -> None:  # type: ignore[no-untyped-def]
    ingest, other_read = other_keys
    response = await KeyClient(ingest).get("/api/v1/routing/policy")
    assert response.status_code == 403
    doc = (await KeyClient(other_read).get("/api/v1/routing/policy")).json()
    assert doc["routes"] == [] and doc["project"] == "other-proj"
