"""Prices from Django rows to the calls view: effective dates, pattern matching, client cost, reprice, defaults."""

from __future__ import annotations

import datetime as dt
import io
import os
from decimal import Decimal

import pytest

from django.core.management import CommandError, call_command

from ingestion import prices
from ingestion.cost import hour_bounds, reprice
from ingestion.models import Price
from tests.ingestion.span_rows import START, Span, calls, insert_spans

pytestmark = pytest.mark.django_db


def model_name(stem: str) -> str:
    return f"{stem}-{os.urandom(3).hex()}"


def chat(model: str, inp: int, out: int, *, at: dt.datetime = START, provider: str = "openai", **extra: object) -> Span:
    return Span(start=at, attrs={"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                                 "gen_ai.request.model": model, "gen_ai.usage.input_tokens": inp,
                                 "gen_ai.usage.output_tokens": out, **extra})


def price(model: str, inp: str, out: str, *, provider: str = "openai", since: dt.date = dt.date(2024, 1, 1),
          **extra: str) -> Price:
    return prices.save_price(Price(provider=provider, model_pattern=model, valid_from=since,
                                   input_per_mtok=Decimal(inp), output_per_mtok=Decimal(out),
                                   **{k: Decimal(v) for k, v in extra.items()}))


def rollup_totals(ch, tenant: str) -> tuple[int, float, int]:  # type: ignore[no-untyped-def]
    row = ch.query("SELECT sum(Calls), sum(Cost), sum(UnpricedCalls) FROM rollups_1h WHERE ProjectId = {t:String}",
                   parameters={"t": tenant}).result_rows[0]
    return int(row[0]), float(row[1]), int(row[2])


def test_effective_dates_price_each_call_at_its_own_date(ch, project) -> None:  # type: ignore[no-untyped-def]
    model = model_name("dated")
    day = START.replace(hour=0, minute=0, second=0, microsecond=0)
    price(model, "1", "1", since=(day - dt.timedelta(days=5)).date())
    price(model, "2", "2", since=day.date())
    insert_spans(ch, project.tenant_id, [
        chat(model, 1_000_000, 0, at=day - dt.timedelta(minutes=1)),
        chat(model, 1_000_000, 0, at=day + dt.timedelta(minutes=1)),
        chat(model, 1_000_000, 0, at=day - dt.timedelta(days=6)),
    ])
    rows = calls(ch, project.tenant_id, ["Timestamp", "TotalCost", "Priced"])
    assert [(r["TotalCost"], r["Priced"]) for r in rows] == [(None, 0), (1.0, 1), (2.0, 1)]
    assert rollup_totals(ch, project.tenant_id) == (3, 3.0, 1)


def test_matching_rule_exact_then_snapshot_suffix_then_glob(ch, project) -> None:  # type: ignore[no-untyped-def]
    base = model_name("fam")
    price(base, "1", "0")
    price(f"{base}-large", "5", "0")
    price(f"{base}-x*", "3", "0")  # a glob: expanded against models seen in calls when prices are synced
    spans = [chat(m, 1_000_000, 0) for m in (base, f"{base}-2026-01-31", f"{base}-large", f"{base}-xl", "other-x")]
    insert_spans(ch, project.tenant_id, spans)
    before = {r["RequestModel"]: r["TotalCost"] for r in calls(ch, project.tenant_id, ["RequestModel", "TotalCost"])}
    # Until synced, the glob knows no names; the exact and suffix-stripped names are priced at once.
    assert before == {base: 1.0, f"{base}-2026-01-31": 1.0, f"{base}-large": 5.0, f"{base}-xl": None, "other-x": None}
    prices.sync_prices()
    reprice(project.tenant_id, START - dt.timedelta(hours=1), START + dt.timedelta(hours=1))
    after = {r["RequestModel"]: r["TotalCost"] for r in calls(ch, project.tenant_id, ["RequestModel", "TotalCost"])}
    assert after == {**before, f"{base}-xl": 3.0}


def test_price_provider_scopes_the_match_and_blank_provider_matches_any(ch, project) -> None:  # type: ignore[no-untyped-def]
    model = model_name("shared")
    price(model, "1", "0", provider="openai")
    price(model, "4", "0", provider="groq")
    insert_spans(ch, project.tenant_id, [
        chat(model, 1_000_000, 0, provider="groq"), chat(model, 1_000_000, 0, provider="openai"),
        chat(model, 1_000_000, 0, provider=""),
    ])
    rows = calls(ch, project.tenant_id, ["Provider", "TotalCost"])
    # With no provider on the span, the provider-agnostic row (first provider alphabetically) applies.
    assert sorted((r["Provider"], r["TotalCost"]) for r in rows) == [("", 4.0), ("groq", 4.0), ("openai", 1.0)]


def test_cached_and_reasoning_prices_default_to_input_and_output(ch, project) -> None:  # type: ignore[no-untyped-def]
    model = model_name("defaults")
    price(model, "2", "8")
    insert_spans(ch, project.tenant_id, [chat(model, 1_000_000, 1_000_000, **{
        "gen_ai.usage.cache_read.input_tokens": 500_000, "gen_ai.usage.reasoning.output_tokens": 500_000})])
    assert calls(ch, project.tenant_id, ["TotalCost"]) == [{"TotalCost": pytest.approx(10.0)}]


def test_client_cost_wins_unless_the_project_says_otherwise(ch, project) -> None:  # type: ignore[no-untyped-def]
    model = model_name("client")
    price(model, "1", "0")
    span = {"gen_ai.usage.cost": 0.25}
    insert_spans(ch, project.tenant_id, [chat(model, 1_000_000, 0, **span)])
    assert calls(ch, project.tenant_id, ["TotalCost", "CostSource"]) == [{"TotalCost": 0.25, "CostSource": "client"}]

    project.client_cost_wins = False
    project.save()  # synced to keel_project_dict by ingestion.project_sync
    insert_spans(ch, project.tenant_id, [chat(model, 1_000_000, 0, at=START + dt.timedelta(seconds=1), **span),
                                         chat("unpriced-" + model, 10, 0, at=START + dt.timedelta(seconds=2), **span)])
    rows = calls(ch, project.tenant_id, ["RequestModel", "TotalCost", "CostSource"])
    assert [(r["TotalCost"], r["CostSource"]) for r in rows] == [
        (0.25, "client"), (1.0, "price_table"), (0.25, "client"),  # no table price: the client's figure still counts
    ]


def test_reprice_recomputes_range_once_and_leaves_the_rest(ch, project) -> None:  # type: ignore[no-untyped-def]
    model = model_name("repriced")
    price(model, "1", "1")
    inside = [chat(model, 1_000_000, 0, at=START + dt.timedelta(minutes=i)) for i in range(3)]
    outside = [chat(model, 1_000_000, 0, at=START + dt.timedelta(hours=5))]
    # The same span stored twice (a retried export) must still count once after repricing.
    inside[0].trace_id, inside[0].span_id = "ab" * 16, "cd" * 8
    inside.append(Span(**inside[0].__dict__))
    insert_spans(ch, project.tenant_id, inside + outside)
    before = calls(ch, project.tenant_id, ["TotalCost"])
    assert [r["TotalCost"] for r in before] == [1.0, 1.0, 1.0, 1.0]

    Price.objects.filter(model_pattern=model).update(input_per_mtok=Decimal("3"))
    out = io.StringIO()
    hour = START.replace(minute=0, second=0, microsecond=0)
    call_command("reprice", project=project.slug, since=f"{hour.isoformat()}Z",
                 until=f"{(hour + dt.timedelta(hours=1)).isoformat()}Z", stdout=out)
    assert "repriced 3 calls" in out.getvalue() and "-> 9.000000 USD" in out.getvalue()
    after = calls(ch, project.tenant_id, ["Timestamp", "TotalCost"])
    assert [r["TotalCost"] for r in after] == [3.0, 3.0, 3.0, 1.0]  # the later hour keeps its old price
    assert rollup_totals(ch, project.tenant_id) == (4, 10.0, 0)
    minute = ch.query("SELECT sum(Calls), sum(Cost) FROM rollups_1m WHERE ProjectId = {t:String} "
                      "AND Minute < {h:DateTime}",
                      parameters={"t": project.tenant_id, "h": hour + dt.timedelta(hours=1)})
    assert minute.result_rows == [(3, 9.0)]


def test_reprice_rejects_bad_input(project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="no project"):
        call_command("reprice", project="nope-" + project.slug, since="2026-01-01", until="2026-01-02")
    with pytest.raises(CommandError, match="not an ISO date"):
        call_command("reprice", project=project.slug, since="yesterday", until="2026-01-02")
    with pytest.raises(CommandError, match="after"):
        call_command("reprice", project=project.slug, since="2026-01-02", until="2026-01-01")


def test_hour_bounds_widen_to_whole_hours() -> None:
    assert hour_bounds(dt.datetime(2026, 1, 1, 10, 15), dt.datetime(2026, 1, 1, 11, 0)) == (
        dt.datetime(2026, 1, 1, 10), dt.datetime(2026, 1, 1, 11))
    assert hour_bounds(dt.datetime(2026, 1, 1, 10, 0), dt.datetime(2026, 1, 1, 11, 0, 1)) == (
        dt.datetime(2026, 1, 1, 10), dt.datetime(2026, 1, 1, 12))


def test_deleted_price_stops_pricing(ch, project) -> None:  # type: ignore[no-untyped-def]
    model = model_name("gone")
    row = price(model, "1", "1")
    prices.delete_price(row)
    insert_spans(ch, project.tenant_id, [chat(model, 1000, 0)])
    assert calls(ch, project.tenant_id, ["TotalCost", "Priced"]) == [{"TotalCost": None, "Priced": 0}]


def test_negative_price_is_refused() -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="negative"):
        price(model_name("neg"), "-1", "1")


def test_default_price_list_loads_dated_and_prices_common_models(ch, project) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    call_command("loaddefaultprices", stdout=out)
    assert "created" in out.getvalue()
    assert Price.objects.filter(provider="openai", model_pattern="gpt-4o-mini").exists()
    assert all("as of 2025-08-15" in p.source for p in Price.objects.all())
    insert_spans(ch, project.tenant_id, [
        chat("gpt-4o-mini", 1_000_000, 1_000_000, **{"gen_ai.response.model": "gpt-4o-mini-2024-07-18"}),
        chat("claude-sonnet-4-5-20250929", 1_000_000, 0, provider="anthropic"),
    ])
    rows = calls(ch, project.tenant_id, ["RequestModel", "TotalCost", "PriceModel"])
    assert {r["RequestModel"]: (r["TotalCost"], r["PriceModel"]) for r in rows} == {
        "gpt-4o-mini": (pytest.approx(0.75), "gpt-4o-mini"),
        "claude-sonnet-4-5-20250929": (pytest.approx(3.0), "claude-sonnet-4-5"),
    }
    # Loading again keeps what an admin may have edited.
    again = io.StringIO()
    call_command("loaddefaultprices", stdout=again)
    assert "0 created, 0 updated" in again.getvalue()
