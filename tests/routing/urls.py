"""Only the routing API (so these tests do not depend on the dashboards' URL modules)."""

from django.urls import include, path

urlpatterns = [path("api/v1/", include("controlplane.api_urls"))]
