"""Live events for the UI: service functions publish, the dashboards' WebSocket consumer forwards.

One group per project (``project-<id>``); the message ``type`` is the consumer method that forwards it
(``project.event`` → ``project_event``). Publishing never raises: a broken channel layer must not undo a
state change that has already been persisted and audited.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def project_group(project_id: int) -> str:
    return f"project-{project_id}"


def publish(project_id: int, kind: str, data: dict[str, Any]) -> None:
    """Send ``{"kind": kind, "data": data}`` to every browser watching the project."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        message = {"type": "project.event", "kind": kind, "data": data}
        async_to_sync(layer.group_send)(project_group(project_id), message)
    except Exception:  # the event is advisory; the state change it describes is already stored
        logger.exception("could not publish %s event for project %s", kind, project_id)
