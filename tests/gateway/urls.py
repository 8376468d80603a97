"""URLs the gateway tests serve: the routing API and the OTLP receiver, without the dashboards' pages."""

from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("controlplane.api_urls")),
    path("", include("ingestion.urls")),
]
