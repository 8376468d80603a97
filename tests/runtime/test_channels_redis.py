"""Live events through the real Redis channel layer, the production Channels backend."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async

from channels.layers import get_channel_layer

from controlplane.realtime import project_group, publish

pytestmark = pytest.mark.redis


async def test_publish_reaches_a_subscriber_through_redis(redis_url: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"keel-test-{uuid.uuid4().hex[:8]}"},
        }
    }
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer"
    project_id = int(uuid.uuid4().int % 10**9)
    channel = await layer.new_channel()
    await layer.group_add(project_group(project_id), channel)
    try:
        await sync_to_async(publish)(project_id, "alert.opened", {"alert": 7})
        message = await asyncio.wait_for(layer.receive(channel), timeout=10)
    finally:
        await layer.group_discard(project_group(project_id), channel)
        await layer.flush()
    assert message == {"type": "project.event", "kind": "alert.opened", "data": {"alert": 7}}
