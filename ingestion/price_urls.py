"""``/api/v1/prices`` and ``/api/v1/prices/<id>`` (see :mod:`ingestion.api_prices`)."""

from __future__ import annotations

from django.urls import path

from ingestion.api_prices import PriceViewSet

urlpatterns = [
    path("prices", PriceViewSet.as_view({"get": "list", "post": "create"}), name="price-list"),
    path("prices/<int:pk>", PriceViewSet.as_view({"get": "retrieve", "put": "update", "patch": "partial_update",
                                                  "delete": "destroy"}), name="price-detail"),
]
