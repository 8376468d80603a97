"""Django-side state of the ingestion app: the effective-dated price list (synced to ClickHouse)."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models


class Price(models.Model):
    """USD per 1M tokens for models matching ``model_pattern`` from ``valid_from`` until the next row's date.

    ``model_pattern`` is an exact model name (``gpt-4o-mini``) or a glob (``claude-3-5-sonnet*``); globs are
    expanded against the model names Keel has seen when prices are synced. Empty optional prices mean "same as
    input" (cached input, cache write) or "same as output" (reasoning).
    """

    provider = models.CharField(max_length=64, blank=True,
                                help_text="OTel provider name (openai, anthropic, gcp.gemini…); blank = any.")
    model_pattern = models.CharField(max_length=200, help_text="Exact model name, or a glob with * and ?.")
    valid_from = models.DateField()
    input_per_mtok = models.DecimalField(max_digits=12, decimal_places=6)
    output_per_mtok = models.DecimalField(max_digits=12, decimal_places=6)
    cached_input_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    cache_write_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    reasoning_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    source = models.CharField(max_length=300, blank=True, help_text="Where the figure comes from, and its date.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "model_pattern", "valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model_pattern", "valid_from"], name="one_price_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.provider or '*'}/{self.model_pattern} from {self.valid_from}"

    def clean(self) -> None:
        for field in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok",
                      "reasoning_per_mtok"):
            value = getattr(self, field)
            if value is not None and value < Decimal(0):
                raise ValidationError({field: "Prices cannot be negative."})
        if not self.model_pattern.strip():
            raise ValidationError({"model_pattern": "A model name or pattern is required."})

    @property
    def is_pattern(self) -> bool:
        return any(c in self.model_pattern for c in "*?[")
