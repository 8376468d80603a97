"""Live project events over WebSocket: one connection per open page, joined to the project's group.

Membership is checked through ``controlplane.tenancy`` on connect, exactly like a page view; a socket for a
project the user cannot see is closed before it joins anything.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from controlplane.metrics import WEBSOCKET_CLIENTS
from controlplane.realtime import project_group
from controlplane.tenancy import NoProjectAccess, ProjectAccess, access_for_user

FORBIDDEN = 4403


@database_sync_to_async
def _access(user: Any, slug: str) -> ProjectAccess | None:
    try:
        return access_for_user(user, slug)
    except NoProjectAccess:
        return None


class ProjectEventsConsumer(AsyncJsonWebsocketConsumer):
    """Forwards ``project.event`` messages (``{"kind", "data"}``) published by ``controlplane.realtime``."""

    group: str | None = None

    async def connect(self) -> None:
        slug = self.scope["url_route"]["kwargs"]["slug"]
        access = await _access(self.scope.get("user"), slug)
        if access is None:
            await self.close(code=FORBIDDEN)
            return
        self.group = project_group(access.project.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        WEBSOCKET_CLIENTS.inc()
        await self.send_json({"kind": "hello", "data": {"project": access.project.slug, "role": access.role}})

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            WEBSOCKET_CLIENTS.dec()

    async def project_event(self, message: dict[str, Any]) -> None:
        await self.send_json({"kind": message["kind"], "data": message.get("data", {})})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Browsers only listen; anything they send is ignored."""
