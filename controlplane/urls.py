"""Root URLs. Each app contributes its own ``urls`` module; keep this list short."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from controlplane import health, metrics

urlpatterns: list[URLPattern | URLResolver] = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("controlplane.api_projects_urls")),
    path("api/v1/", include("controlplane.api_urls")),
    path("api/v1/", include("ingestion.api_urls")),
    path("api/v1/", include("dashboards.api_urls")),
    path("api/v1/", include("ingestion.price_urls")),
    path("api/v1/", include("anomaly.api_urls")),
    path("", include("ingestion.urls")),
    path("", include("dashboards.urls")),  # last: pages at the root
]

handler404 = "controlplane.api_errors.not_found"
handler500 = "controlplane.api_errors.server_error"
