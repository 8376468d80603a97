"""OTLP/HTTP paths: ``/v1/traces`` and ``/v1/logs`` (what exporters append to OTEL_EXPORTER_OTLP_ENDPOINT), also
under ``/otlp/`` for deployments that put Keel behind one prefix."""

from __future__ import annotations

from django.urls import URLPattern, re_path

from ingestion import views

urlpatterns: list[URLPattern] = [
    re_path(r"^(?:otlp/)?v1/traces/?$", views.traces, name="otlp-traces"),
    re_path(r"^(?:otlp/)?v1/logs/?$", views.logs, name="otlp-logs"),
]
