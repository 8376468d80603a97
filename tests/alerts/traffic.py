"""Synthetic LLM traffic written the way an OTel Collector writes it (raw spans into ``otel_traces``)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

import numpy as np

from tests.support import COLLECTOR_COLUMNS

START = dt.datetime(2026, 11, 18, 0, 0)


def spans(
    tenant: str,
    *,
    route: str,
    model: str,
    minutes: range,
    calls_per_minute: int = 4,
    latency_ms: Callable[[int], float] = lambda _m: 800.0,
    error_every: int = 0,
    service: str = "checkout",
    start: dt.datetime = START,
    seed: int = 0,
    output_tokens: tuple[int, int] = (90, 110),
    environment: str = "",
    errors: Callable[[int, int], str | None] | None = None,
) -> list[list[object]]:
    """Rows for ``otel_traces``: ``calls_per_minute`` chat calls in each minute index of ``minutes``.

    ``errors(minute, k)`` names the error type of call ``k`` of the minute (None: success); without it every
    ``error_every``-th call is a RateLimitError. ``environment`` is the ``deployment.environment`` resource attribute.
    """
    rng = np.random.default_rng(seed)
    rows: list[list[object]] = []
    n = 0
    for minute in minutes:
        base = latency_ms(minute)
        for k in range(calls_per_minute):
            n += 1
            at = start + dt.timedelta(minutes=minute, seconds=int(k * 60 / calls_per_minute))
            duration_ns = int(base * float(rng.lognormal(0.0, 0.08)) * 1e6)
            error_type = errors(minute, k) if errors else (
                "RateLimitError" if error_every and n % error_every == 0 else None)
            error = error_type is not None
            attrs = {
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "keel.route": route,
                "gen_ai.request.model": model, "gen_ai.response.model": model,
                "gen_ai.usage.input_tokens": str(int(rng.integers(180, 220))),
                "gen_ai.usage.output_tokens": str(int(rng.integers(*output_tokens))),
                "gen_ai.response.finish_reasons": '["stop"]',
                **({"error.type": error_type} if error_type else {}),
            }
            rows.append([
                at, os.urandom(16).hex(), os.urandom(8).hex(), "", "", f"chat {model}", "Client", service,
                {"service.name": service, "keel.project_id": tenant,
                 **({"deployment.environment": environment} if environment else {})}, "test", "1", attrs, duration_ns,
                "Error" if error else "Unset", "", [], [], [], [], [], [], [],
            ])
    return rows


def insert(ch, rows: list[list[object]]) -> None:  # type: ignore[no-untyped-def]
    for i in range(0, len(rows), 20_000):
        ch.insert("otel_traces", rows[i : i + 20_000], column_names=COLLECTOR_COLUMNS)


def at_minute(minute: int, start: dt.datetime = START) -> dt.datetime:
    return (start + dt.timedelta(minutes=minute)).replace(tzinfo=dt.UTC)


HISTORY_MINUTES = 3 * 1440


def history_latency(minute: int) -> float:
    """Three days of one route's latency: a 3x step in the last 30 minutes, a 1.6x and a 1.35x bump of 20 minutes
    on the days before (which only some sensitivities alert on), 800 ms otherwise."""
    if minute >= HISTORY_MINUTES - 30:
        return 2400.0
    if 2 * 1440 <= minute < 2 * 1440 + 20:
        return 800.0 * 1.35
    if 1440 + 600 <= minute < 1440 + 620:
        return 800.0 * 1.6
    return 800.0


def write_history(ch, tenant: str, now: dt.datetime, **extra: object) -> dt.datetime:  # type: ignore[no-untyped-def]
    """``HISTORY_MINUTES`` of support/gpt-a in prod ending at ``now`` (its minute excluded); returns the start."""
    start = (now.astimezone(dt.UTC).replace(second=0, microsecond=0, tzinfo=None)
             - dt.timedelta(minutes=HISTORY_MINUTES))
    insert(ch, spans(tenant, route="support", model="gpt-a", minutes=range(HISTORY_MINUTES), start=start,
                     latency_ms=history_latency, environment="prod", seed=1, **extra))  # type: ignore[arg-type]
    return start
