"""Channels layer: in-memory for one process, Redis when web replicas must share events."""

from __future__ import annotations

from .env import get_str

KEEL_REDIS_URL = get_str("KEEL_REDIS_URL", "")
if KEEL_REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [KEEL_REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
