"""The WebSocket consumer: membership checked on connect, project events forwarded, nothing across projects."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from controlplane.realtime import publish
from controlplane.websocket_routes import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():  # type: ignore[no-untyped-def]
    """The ORM calls ran in asgiref's sync thread; close its connection so PostgreSQL can drop the test DB."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


async def connect(user, slug: str) -> tuple[WebsocketCommunicator, bool]:  # type: ignore[no-untyped-def]
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/projects/{slug}/events/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    return communicator, connected


async def test_member_receives_project_events(project, member) -> None:
    user = await sync_to_async(member)("viewer")
    ws, connected = await connect(user, project.slug)
    assert connected
    assert (await ws.receive_json_from())["kind"] == "hello"
    await sync_to_async(publish)(project.pk, "alert.opened", {"id": 7, "title": "p95 up"})
    assert await ws.receive_json_from(timeout=2) == {"kind": "alert.opened", "data": {"id": 7, "title": "p95 up"}}
    await ws.disconnect()


async def test_non_member_is_refused_and_gets_nothing(project, django_user_model) -> None:
    from controlplane.models import Project

    other = await sync_to_async(Project.objects.create)(slug="ws-other", name="Other")
    stranger = await sync_to_async(django_user_model.objects.create_user)("ws-stranger", password="x-long-pass-1")
    _ws, connected = await connect(stranger, project.slug)
    assert not connected
    from django.contrib.auth.models import AnonymousUser

    _ws, connected = await connect(AnonymousUser(), other.slug)
    assert not connected
