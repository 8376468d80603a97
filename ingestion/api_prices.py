"""``/api/v1/prices``: the effective-dated price list over the API (the admin edits the same rows).

Prices are reference data shared by every project, so anyone signed in (or holding a read key) may list them, but
only staff users change them; every change goes through :mod:`ingestion.prices`, which syncs ClickHouse.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, viewsets
from rest_framework.permissions import SAFE_METHODS, BasePermission

from controlplane.apikeys import VerifiedKey
from controlplane.models import Scope
from ingestion import prices
from ingestion.models import Price


class PriceSerializer(serializers.ModelSerializer[Price]):
    class Meta:
        model = Price
        fields = ["id", "provider", "model_pattern", "valid_from", "input_per_mtok", "output_per_mtok",
                  "cached_input_per_mtok", "cache_write_per_mtok", "reasoning_per_mtok", "source", "updated_at"]
        read_only_fields = ["id", "updated_at"]


class PricePermission(BasePermission):
    message = "Only staff users can change prices (they apply to every project)."

    def has_permission(self, request: Any, view: Any) -> bool:
        if isinstance(request.auth, VerifiedKey):
            return request.method in SAFE_METHODS and request.auth.allows(Scope.READ)
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or bool(user.is_staff)


class PriceViewSet(viewsets.ModelViewSet[Price]):
    queryset = Price.objects.all()
    serializer_class = PriceSerializer
    permission_classes = [PricePermission]

    def perform_create(self, serializer: PriceSerializer) -> None:  # type: ignore[override]
        serializer.instance = _save(Price(**serializer.validated_data))

    def perform_update(self, serializer: PriceSerializer) -> None:  # type: ignore[override]
        price = serializer.instance
        assert price is not None
        for name, value in serializer.validated_data.items():
            setattr(price, name, value)
        serializer.instance = _save(price)

    def perform_destroy(self, instance: Price) -> None:
        prices.delete_price(instance)


def _save(price: Price) -> Price:
    try:
        return prices.save_price(price)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from exc
