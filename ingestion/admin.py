"""Django admin for the price list; saving or deleting a price syncs ClickHouse through ``ingestion.prices``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from ingestion import prices
from ingestion.models import Price


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ("provider", "model_pattern", "valid_from", "input_per_mtok", "output_per_mtok",
                    "cached_input_per_mtok", "cache_write_per_mtok", "reasoning_per_mtok", "source")
    list_filter = ("provider",)
    search_fields = ("model_pattern",)
    ordering = ("provider", "model_pattern", "-valid_from")

    def save_model(self, request: HttpRequest, obj: Price, form: Any, change: bool) -> None:
        prices.save_price(obj)

    def delete_model(self, request: HttpRequest, obj: Price) -> None:
        prices.delete_price(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Price]) -> None:
        queryset.delete()
        prices.sync_prices()
