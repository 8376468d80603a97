"""Number formatting for the pages: money, percentages, milliseconds, compact counts; '—' when unknown."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()
DASH = "—"


@register.filter
def money(value: Any) -> str:
    if value is None:
        return DASH
    v = float(value)
    if abs(v) >= 1000:
        return f"${v:,.0f}"
    return f"${v:,.2f}" if abs(v) >= 0.01 or v == 0 else f"${v:.4f}"


@register.filter
def pct(value: Any, digits: int = 1) -> str:
    return DASH if value is None else f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def ms(value: Any) -> str:
    if value is None:
        return DASH
    v = float(value)
    return f"{v / 1000:.2f} s" if v >= 10_000 else f"{v:,.0f} ms"


@register.filter
def compact(value: Any) -> str:
    if value is None:
        return DASH
    v = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= limit:
            return f"{v / limit:.1f}{suffix}"
    return f"{v:,.0f}" if v == int(v) else f"{v:,.1f}"


@register.filter
def get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if hasattr(mapping, "get") else None
