"""Synthetic LLM calls: who calls which route and model, how many tokens, how long it takes, what fails.

Pure and deterministic for a given generator state, so it is testable without a network; ``otlp.py`` turns
the calls into real OpenTelemetry spans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from ingestion.simulator.catalog import (
    BACKGROUND_ERROR_RATE,
    ERROR_TYPES,
    GPT_4O_MINI,
    GPT_41_MINI,
    ROUTES,
    SERVICES,
    USERS,
    Model,
    Route,
    Service,
)
from ingestion.simulator.incidents import ERRORS, PROMPT, VERSION, Incident


@dataclass(frozen=True)
class Call:
    service: Service
    route: Route
    model: Model
    start: datetime
    duration_s: float
    ttft_s: float | None  # set for streamed calls
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    finish_reason: str
    error_type: str  # '' when the call succeeded
    http_status: int
    user_id: str
    conversation_id: str

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)


def daily_factor(ts: datetime, amplitude: float) -> float:
    """1 ± amplitude over the day, peaking mid-afternoon UTC (the simulated users' working day)."""
    hour = ts.hour + ts.minute / 60
    return 1.0 + amplitude * math.sin(2 * math.pi * (hour - 9.0) / 24.0)


def calls_per_minute(rate_per_s: float, ts: datetime) -> float:
    weekend = 0.75 if ts.weekday() >= 5 else 1.0
    return rate_per_s * 60 * daily_factor(ts, 0.55) * weekend


class TrafficModel:
    def __init__(self, seed: int, incidents: list[Incident]) -> None:
        self.rng = np.random.default_rng(seed)
        self.incidents = incidents
        self._service_p = np.array([s.traffic_share for s in SERVICES])
        self._service_p /= self._service_p.sum()
        ranks = np.arange(1, USERS + 1, dtype=float)
        self._user_p = 1 / ranks**1.1
        self._user_p /= self._user_p.sum()
        self._error_p = np.array([e[2] for e in ERROR_TYPES])
        self._error_p /= self._error_p.sum()

    def minute(self, minute_start: datetime, rate_per_s: float, seconds: float = 60.0) -> list[Call]:
        """Calls starting within ``[minute_start, minute_start + seconds)``."""
        expected = calls_per_minute(rate_per_s, minute_start) * seconds / 60.0
        count = int(self.rng.poisson(max(expected, 0.0)))
        offsets = np.sort(self.rng.uniform(0, seconds, size=count))
        return [self.call(minute_start + timedelta(seconds=float(o))) for o in offsets]

    def call(self, start: datetime) -> Call:
        rng = self.rng
        service = SERVICES[int(rng.choice(len(SERVICES), p=self._service_p))]
        names, shares = zip(*service.routes, strict=True)
        route = ROUTES[names[int(rng.choice(len(names), p=np.array(shares) / sum(shares)))]]
        models, weights = zip(*route.deployments, strict=True)
        model = models[int(rng.choice(len(models), p=np.array(weights) / sum(weights)))]
        active = [i for i in self.incidents if i.active(start)]

        latency_factor = 1.0
        output_factor = 1.0
        for incident in active:
            if incident.kind == VERSION and route.name == incident.route and model == GPT_4O_MINI:
                model = GPT_41_MINI
                latency_factor *= float(incident.effect["latency_factor"])
            if incident.kind == PROMPT and route.name == incident.route:
                output_factor *= float(incident.effect["output_factor"])

        input_tokens = max(8, int(rng.lognormal(math.log(route.input_tokens_median), 0.55)))
        cache_read = 0
        if route.operation == "chat" and model.provider == "openai" and rng.random() < 0.35:
            cache_read = int(input_tokens * rng.uniform(0.3, 0.8)) // 128 * 128
        output_tokens = 0
        finish = "stop"
        if route.output_tokens_median > 0:
            output_tokens = max(1, int(rng.lognormal(math.log(route.output_tokens_median * output_factor), 0.5)))
            if output_tokens >= route.max_tokens:
                output_tokens, finish = route.max_tokens, "length"

        cycle = daily_factor(start, 0.12)
        streamed = rng.random() < route.streamed_share
        ttft: float | None = None
        if route.operation == "embeddings":
            duration = float(rng.lognormal(math.log(0.12 * cycle), model.latency_sigma))
        else:
            ttft_median = model.ttft_s * cycle * latency_factor * (1 + input_tokens / 20000)
            first = float(rng.lognormal(math.log(ttft_median), model.latency_sigma))
            generate = output_tokens / max(1.0, rng.lognormal(math.log(model.tokens_per_s / latency_factor), 0.25))
            duration = first + generate
            ttft = first if streamed else None

        error_type, status = "", 200
        error_rate = BACKGROUND_ERROR_RATE
        burst = next((i for i in active if i.kind == ERRORS and i.provider == model.provider), None)
        if burst is not None and rng.random() < float(burst.effect["error_rate"]):
            error_type, status = str(burst.effect["error_type"]), int(burst.effect["status"])
        elif rng.random() < error_rate:
            name, status, _share = ERROR_TYPES[int(rng.choice(len(ERROR_TYPES), p=self._error_p))]
            error_type = name
        if error_type:
            output_tokens, cache_read, finish, ttft = 0, 0, "", None
            duration = min(duration, float(rng.lognormal(math.log(0.4), 0.6)))
            if error_type == "APITimeoutError":
                duration = 30.0 + float(rng.uniform(0, 0.5))

        user = int(rng.choice(USERS, p=self._user_p)) + 1
        return Call(
            service=service, route=route, model=model, start=start, duration_s=max(duration, 0.005), ttft_s=ttft,
            input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read,
            finish_reason=finish, error_type=error_type, http_status=status, user_id=f"u-{user:04d}",
            conversation_id=f"conv-{int(rng.integers(0, 2**40)):010x}",
        )
