"""Read API for stored calls and usage under ``/api/v1/``."""

from __future__ import annotations

from django.urls import path

from ingestion import api

urlpatterns = [
    path("calls", api.CallsView.as_view(), name="ingestion-api-calls"),
    path("usage", api.UsageView.as_view(), name="ingestion-api-usage"),
]
