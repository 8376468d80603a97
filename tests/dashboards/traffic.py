"""Synthetic GenAI spans written the Collector way (straight into ``otel_traces``), so the materialized views
produce ``llm_calls`` and the rollups exactly as in production."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from dataclasses import dataclass

from tests.support import COLLECTOR_COLUMNS

PRICES = [("dash-small", "openai", 0.5, 1.5), ("dash-large", "openai", 5.0, 15.0),
          ("dash-claude", "anthropic", 3.0, 15.0)]


@dataclass
class Model:
    request: str
    response: str
    provider: str
    latency_ms: float
    error_rate: float = 0.0


DEFAULT_MODELS = [
    Model("dash-small", "dash-small-2024-07-18", "openai", 600),
    Model("dash-large", "dash-large-2024-08-06", "openai", 1800, 0.05),
    Model("dash-claude", "dash-claude-20241022", "anthropic", 1200),
]


def ensure_prices(ch) -> None:  # type: ignore[no-untyped-def]
    """Price the test models in ClickHouse directly, newest version: a test that synced the Django price list
    earlier in the session wrote newer tombstones for every row Django does not know, these included."""
    version = time.time_ns()
    rows = [[m, p, dt.date(2024, 1, 1), dt.date(2100, 1, 1), i, o, i / 2, 0.0, version] for m, p, i, o in PRICES]
    ch.insert("keel_prices", rows, column_names=["model", "provider", "valid_from", "valid_to", "input_per_mtok",
                                                 "output_per_mtok", "cached_input_per_mtok", "reasoning_per_mtok",
                                                 "version"])
    ch.command("SYSTEM RELOAD DICTIONARY keel_price_dict")


def span_row(tenant: str, when: dt.datetime, model: Model, *, route: str, service: str = "checkout",
             user: str = "u-1", cost_center: str = "growth", error: bool = False, prompt: str = "hello",
             trace_id: str | None = None, span_id: str | None = None, parent: str = "",
             latency_ms: float | None = None) -> list[object]:
    latency = latency_ms if latency_ms is not None else model.latency_ms
    attrs = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": model.provider,
        "gen_ai.request.model": model.request, "gen_ai.response.model": model.response,
        "gen_ai.usage.input_tokens": "400", "gen_ai.usage.output_tokens": "200", "keel.route": route,
        "user.id": user, "keel.cost_center": cost_center, "gen_ai.response.finish_reasons": json.dumps(["stop"]),
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}]),
    }
    if error:
        attrs["error.type"] = "RateLimitError"
    else:  # a streamed call: time to first chunk, in seconds
        attrs["gen_ai.response.time_to_first_chunk"] = f"{latency * 0.22 / 1000:.3f}"
    return [
        when.replace(tzinfo=None), trace_id or os.urandom(16).hex(), span_id or os.urandom(8).hex(), parent, "",
        f"chat {model.request}", "Client", service,
        {"service.name": service, "keel.project_id": tenant, "deployment.environment.name": "prod"},
        "opentelemetry.instrumentation.openai_v2", "2.4b0", attrs, int(latency * 1e6),
        "Error" if error else "Unset", "", [], [], [], [], [], [], [],
    ]


def write_traffic(ch, tenant: str, *, minutes: int = 120, per_minute: int = 6,  # type: ignore[no-untyped-def]
                  models: list[Model] | None = None, routes: tuple[str, ...] = ("chat", "summarise"),
                  now: dt.datetime | None = None, seed: int = 7) -> int:
    """``minutes`` of traffic ending now, ``per_minute`` calls per minute spread over models and routes."""
    rng = random.Random(seed)
    models = models or DEFAULT_MODELS
    now = now or dt.datetime.now(dt.UTC)
    rows = []
    for m in range(minutes):
        minute = now - dt.timedelta(minutes=m, seconds=5)
        for i in range(per_minute):
            model = models[i % len(models)]
            rows.append(span_row(
                tenant, minute, model, route=routes[i % len(routes)], user=f"user-{i % 3}",
                error=rng.random() < model.error_rate, latency_ms=model.latency_ms * rng.uniform(0.7, 1.3),
                prompt=f"order {m}-{i} refund please",
            ))
    ch.insert("otel_traces", rows, column_names=COLLECTOR_COLUMNS)
    return len(rows)
