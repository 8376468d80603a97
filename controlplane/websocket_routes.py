"""WebSocket URL patterns gathered from the apps that own consumers."""

from __future__ import annotations

from django.urls import URLPattern, path

from dashboards.consumers import ProjectEventsConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/projects/<slug:slug>/events/", ProjectEventsConsumer.as_asgi(), name="ws-project-events"),
]
