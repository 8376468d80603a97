"""The simulator's story as data: a deterministic incident schedule and traffic that shows each incident."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from ingestion.simulator import KINDS, incident_schedule, parse_kinds
from ingestion.simulator.catalog import GPT_4O_MINI, GPT_41_MINI
from ingestion.simulator.incidents import MIN_DURATION
from ingestion.simulator.traffic import TrafficModel

ORIGIN = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def test_schedule_is_deterministic_ordered_and_never_overlaps() -> None:
    first = incident_schedule(42, ORIGIN, cycles=3)
    assert first == incident_schedule(42, ORIGIN, cycles=3)
    assert first != incident_schedule(43, ORIGIN, cycles=3)
    assert [i.kind for i in first[:3]] == list(KINDS)
    for earlier, later in itertools.pairwise(first):
        assert earlier.ends_at < later.starts_at
    assert all(i.starts_at > ORIGIN for i in first)


def test_subsets_keep_the_same_times_and_speed_shortens_gaps_not_below_minimum() -> None:
    everything = {i.kind: i for i in incident_schedule(5, ORIGIN)}
    only_errors = incident_schedule(5, ORIGIN, kinds=("errors",))
    assert len(only_errors) == 1 and only_errors[0] == everything["errors"]
    fast = incident_schedule(5, ORIGIN, speed=60)
    assert fast[-1].ends_at - ORIGIN < everything["prompt"].ends_at - ORIGIN
    assert all(i.ends_at - i.starts_at >= MIN_DURATION for i in fast)
    assert fast[0].as_dict()["starts_at"] == fast[0].starts_at.isoformat()


def test_parse_kinds() -> None:
    assert parse_kinds("all") == KINDS
    assert parse_kinds("none") == ()
    assert parse_kinds("errors, prompt") == ("errors", "prompt")
    with pytest.raises(ValueError, match="unknown incident kind"):
        parse_kinds("version,meteor")


def _calls(model: TrafficModel, start: datetime, minutes: int, rate: float = 3.0) -> list:  # type: ignore[type-arg]
    calls = []
    for m in range(minutes):
        calls += model.minute(start + timedelta(minutes=m), rate)
    return calls


def test_each_incident_changes_exactly_what_it_says() -> None:
    schedule = incident_schedule(9, ORIGIN)
    by_kind = {i.kind: i for i in schedule}
    quiet = _calls(TrafficModel(1, schedule), ORIGIN - timedelta(hours=1), 40)

    version = by_kind["version"]
    during = _calls(TrafficModel(1, schedule), version.starts_at, 10)
    chat_quiet = [c for c in quiet if c.route.name == "chat-default" and c.model.provider == "openai"]
    chat_during = [c for c in during if c.route.name == "chat-default" and c.model.provider == "openai"]
    assert {c.model for c in chat_quiet} == {GPT_4O_MINI}
    assert {c.model for c in chat_during} == {GPT_41_MINI}
    ok = [c for c in chat_during if not c.error_type]
    quiet_ok = [c for c in chat_quiet if not c.error_type]
    assert np.median([c.duration_s for c in ok]) > 1.3 * np.median([c.duration_s for c in quiet_ok])
    assert {c.model for c in during if c.route.name != "chat-default"}.isdisjoint({GPT_41_MINI})

    errors = by_kind["errors"]
    burst = _calls(TrafficModel(2, schedule), errors.starts_at, 8)
    anthropic = [c for c in burst if c.model.provider == "anthropic"]
    others = [c for c in burst if c.model.provider != "anthropic"]
    assert sum(c.error_type == "OverloadedError" for c in anthropic) / len(anthropic) > 0.2
    assert sum(bool(c.error_type) for c in others) / len(others) < 0.06
    assert sum(bool(c.error_type) for c in quiet) / len(quiet) < 0.05

    prompt = by_kind["prompt"]
    longer = _calls(TrafficModel(3, schedule), prompt.starts_at, 10)
    out_during = np.median([c.output_tokens for c in longer if c.route.name == "summarize" and not c.error_type])
    out_quiet = np.median([c.output_tokens for c in quiet if c.route.name == "summarize" and not c.error_type])
    assert out_during > 1.8 * out_quiet


def test_traffic_is_realistic() -> None:
    calls = _calls(TrafficModel(11, []), ORIGIN, 30)
    assert {c.service.name for c in calls} == {"checkout-assistant", "support-bot", "search-summarizer"}
    assert {c.route.name for c in calls} == {"chat-default", "summarize", "embed"}
    assert {c.model.provider for c in calls} == {"openai", "anthropic", "gcp.gemini"}
    streamed = [c for c in calls if c.ttft_s is not None]
    assert streamed and all(0 < c.ttft_s < c.duration_s for c in streamed)
    assert all(c.output_tokens == 0 for c in calls if c.route.name == "embed")
    assert len({c.user_id for c in calls}) > 20
    # daily cycle: mid-afternoon UTC is busier than the small hours
    model = TrafficModel(12, [])
    night = len(_calls(model, ORIGIN.replace(hour=3), 30))
    day = len(_calls(model, ORIGIN.replace(hour=15), 30))
    assert day > 1.5 * night
