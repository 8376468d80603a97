"""Scripted incidents: deterministic from the seed, exposed as data so tests can assert what should be caught.

Incidents never overlap: each starts a gap after the previous one ends. ``speed`` shortens the gaps (and the
durations, but never below ``MIN_DURATION`` so per-minute detectors still see a few bad minutes).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ingestion.simulator.catalog import CLAUDE_HAIKU, GPT_4O_MINI, GPT_41_MINI

VERSION = "version"
ERRORS = "errors"
PROMPT = "prompt"
KINDS = (VERSION, ERRORS, PROMPT)

MIN_DURATION = timedelta(minutes=5)


@dataclass(frozen=True)
class IncidentPlan:
    kind: str
    gap: timedelta  # quiet time before it starts (after the previous incident ends)
    jitter: timedelta  # +/- uniform, drawn from the seed
    duration: timedelta
    route: str = ""
    provider: str = ""
    effect: dict[str, Any] = field(default_factory=dict)
    description: str = ""


PLANS: tuple[IncidentPlan, ...] = (
    IncidentPlan(
        VERSION, timedelta(minutes=10), timedelta(minutes=2), timedelta(minutes=20), route="chat-default",
        provider=GPT_4O_MINI.provider,
        effect={"from_model": GPT_4O_MINI.response_model, "to_model": GPT_41_MINI.response_model,
                "latency_factor": 1.8},
        description=f"{GPT_41_MINI.response_model} rolls out on chat-default in place of "
                    f"{GPT_4O_MINI.response_model}: slower and pricier",
    ),
    IncidentPlan(
        ERRORS, timedelta(minutes=15), timedelta(minutes=3), timedelta(minutes=8), provider=CLAUDE_HAIKU.provider,
        effect={"error_rate": 0.35, "error_type": "OverloadedError", "status": 529},
        description="anthropic returns OverloadedError (529) on a third of calls",
    ),
    IncidentPlan(
        PROMPT, timedelta(minutes=15), timedelta(minutes=3), timedelta(minutes=25), route="summarize",
        effect={"output_factor": 2.4},
        description="a prompt change on summarize makes answers 2.4x longer",
    ),
)
CYCLE_PAUSE = timedelta(minutes=20)  # after the last incident, before the schedule repeats


@dataclass(frozen=True)
class Incident:
    kind: str
    starts_at: datetime
    ends_at: datetime
    route: str
    provider: str
    effect: dict[str, Any]
    description: str

    def active(self, ts: datetime) -> bool:
        return self.starts_at <= ts < self.ends_at

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["starts_at"] = self.starts_at.isoformat()
        data["ends_at"] = self.ends_at.isoformat()
        return data


def parse_kinds(raw: str) -> tuple[str, ...]:
    """``all`` | ``none`` | comma-separated subset of version,errors,prompt."""
    raw = raw.strip().lower()
    if raw == "all":
        return KINDS
    if raw in {"none", ""}:
        return ()
    kinds = tuple(k.strip() for k in raw.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown incident kind(s) {', '.join(unknown)}: use all, none or a subset of "
                         f"{','.join(KINDS)}")
    return kinds


def incident_schedule(
    seed: int, origin: datetime, kinds: tuple[str, ...] = KINDS, speed: float = 1.0, cycles: int = 1
) -> list[Incident]:
    """The incidents that start after ``origin`` (deterministic for a seed), in time order."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    rng = random.Random(seed)
    incidents: list[Incident] = []
    cursor = origin
    for _cycle in range(cycles):
        for plan in PLANS:
            jitter = plan.jitter * rng.uniform(-1, 1)  # drawn for every plan so subsets keep the same times
            start = cursor + (plan.gap + jitter) / speed
            end = start + max(plan.duration / speed, MIN_DURATION)
            cursor = end
            if plan.kind in kinds:
                incidents.append(Incident(plan.kind, start, end, plan.route, plan.provider, dict(plan.effect),
                                          plan.description))
        cursor += CYCLE_PAUSE / speed
    return incidents
