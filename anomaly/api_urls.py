"""Alerts, detector settings, notification channels and silences under ``/api/v1/``."""

from __future__ import annotations

from django.urls import path

from anomaly import api

urlpatterns = [
    path("alerts", api.AlertListView.as_view(), name="api-alerts"),
    path("alerts/<int:alert_id>", api.AlertDetailView.as_view(), name="api-alert"),
    path("alerts/<int:alert_id>/ack", api.AlertAckView.as_view(), name="api-alert-ack"),
    path("alerts/<int:alert_id>/snooze", api.AlertSnoozeView.as_view(), name="api-alert-snooze"),
    path("alerts/<int:alert_id>/resolve", api.AlertResolveView.as_view(), name="api-alert-resolve"),
    path("alerts/<int:alert_id>/assign", api.AlertAssignView.as_view(), name="api-alert-assign"),
    path("detectors", api.DetectorConfigListView.as_view(), name="api-detectors"),
    path("detectors/<str:kind>", api.DetectorConfigDetailView.as_view(), name="api-detector"),
    path("notification-channels", api.ChannelListView.as_view(), name="api-channels"),
    path("notification-channels/<int:pk>", api.ChannelDetailView.as_view(), name="api-channel"),
    path("silences", api.SilenceListView.as_view(), name="api-silences"),
    path("silences/<int:pk>", api.SilenceDetailView.as_view(), name="api-silence"),
]
