"""The price list: Django rows → ClickHouse ``keel_prices`` → the ``keel_price_dict`` the calls view prices with.

One write path: :func:`save_price` / :func:`delete_price` / :func:`load_default_prices` change Django rows and then
call :func:`sync_prices`, which pushes the whole list in one insert and reloads the dictionary. Glob patterns are
expanded to concrete model names here (against the names seen in each project's calls), because the view can
only do exact dictionary lookups on the hot path.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction

from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.ddl import Topology
from ingestion.models import Price

DEFAULT_PRICES_FILE = Path(__file__).resolve().parent / "data" / "default_prices.json"
FOREVER = dt.date(2149, 6, 6)  # ClickHouse Date's last day
PRICE_COLUMNS = ["provider", "model", "valid_from", "valid_to", "input_per_mtok", "output_per_mtok",
                 "cached_input_per_mtok", "cache_write_per_mtok", "reasoning_per_mtok", "source", "deleted", "version"]


@dataclass(frozen=True)
class PriceRow:
    provider: str
    model: str
    valid_from: dt.date
    valid_to: dt.date
    input: float
    output: float
    cached_input: float
    cache_write: float
    reasoning: float
    source: str

    @property
    def key(self) -> tuple[str, str, dt.date]:
        return (self.provider, self.model, self.valid_from)


class SeenModels:
    """Distinct model names in one project's calls over the last ``days`` (what glob patterns expand against)."""

    SQL = """SELECT DISTINCT Provider, m FROM llm_calls ARRAY JOIN [RequestModel, ResponseModel] AS m
WHERE ProjectId = {tenant:String} AND Timestamp >= now() - toIntervalDay({days:UInt32}) AND m != ''"""

    def __init__(self, tenant_id: str, days: int = 35) -> None:
        if not tenant_id:
            raise ValueError("SeenModels needs a tenant")
        self.tenant_id, self.days = tenant_id, days

    def fetch(self) -> set[tuple[str, str]]:
        rows = get_client().query(self.SQL, parameters={"tenant": self.tenant_id, "days": self.days}).result_rows
        return {(str(p), str(m)) for p, m in rows}


def _seen_models() -> set[tuple[str, str]]:
    from controlplane.models import Project

    seen: set[tuple[str, str]] = set()
    for tenant_id in Project.objects.values_list("tenant_id", flat=True):
        seen |= SeenModels(tenant_id).fetch()
    return seen


def expand(prices: list[Price], seen: set[tuple[str, str]]) -> list[PriceRow]:
    """Concrete (provider, model) rows with their validity ranges.

    Exact names win over patterns; among patterns the longest (most specific) wins. Every priced model also gets
    a provider-agnostic row (provider '') unless one was entered explicitly, copied from the alphabetically first
    provider that prices it, so spans that name no (or an unlisted) provider — Langfuse, Azure deployments of
    OpenAI models — are still priced; enter a blank-provider price to choose differently.
    """
    exact = [p for p in prices if not p.is_pattern]
    patterns = sorted((p for p in prices if p.is_pattern), key=lambda p: -len(p.model_pattern))
    by_key: dict[tuple[str, str], list[Price]] = {}
    for p in exact:
        by_key.setdefault((p.provider, p.model_pattern), []).append(p)
    exact_names = {(p.provider, p.model_pattern) for p in exact}
    for provider, model in sorted(seen):
        for p in patterns:
            if p.provider not in ("", provider):
                continue
            if (p.provider, model) in exact_names or not fnmatch.fnmatchcase(model, p.model_pattern):
                continue
            key = (p.provider, model)
            # The most specific pattern claims the name; its dated versions all come along.
            claimed = by_key.setdefault(key, [])
            if not claimed or claimed[0].model_pattern == p.model_pattern:
                claimed.append(p)
    rows: list[PriceRow] = []
    for (provider, model), versions in by_key.items():
        rows += _dated_rows(provider, model, versions)
    agnostic: dict[str, list[PriceRow]] = {}
    for row in rows:
        if row.provider:
            agnostic.setdefault(row.model, []).append(row)
    explicit_any = {row.model for row in rows if not row.provider}
    for model, candidates in agnostic.items():
        if model in explicit_any:
            continue
        owner = sorted({r.provider for r in candidates})[0]
        rows += [PriceRow("", model, *_rest(r)) for r in candidates if r.provider == owner]
    return rows


def _rest(row: PriceRow) -> tuple[Any, ...]:
    return (row.valid_from, row.valid_to, row.input, row.output, row.cached_input, row.cache_write, row.reasoning,
            row.source)


def _dated_rows(provider: str, model: str, versions: list[Price]) -> list[PriceRow]:
    versions = sorted(versions, key=lambda p: p.valid_from)
    rows = []
    for i, p in enumerate(versions):
        until = versions[i + 1].valid_from - dt.timedelta(days=1) if i + 1 < len(versions) else FOREVER
        inp, out = float(p.input_per_mtok), float(p.output_per_mtok)
        rows.append(PriceRow(
            provider=provider, model=model, valid_from=p.valid_from, valid_to=until, input=inp, output=out,
            cached_input=float(p.cached_input_per_mtok) if p.cached_input_per_mtok is not None else inp,
            cache_write=float(p.cache_write_per_mtok) if p.cache_write_per_mtok is not None else inp,
            reasoning=float(p.reasoning_per_mtok) if p.reasoning_per_mtok is not None else out,
            source=p.source,
        ))
    return rows


class StoredPriceKeys:
    """(provider, model, valid_from) of the live rows in ``keel_prices`` (global reference data, no tenant)."""

    SQL = """SELECT provider, model, valid_from FROM keel_prices GROUP BY provider, model, valid_from
HAVING argMax(deleted, version) = 0"""

    def fetch(self) -> set[tuple[str, str, dt.date]]:
        return {(str(p), str(m), d) for p, m, d in get_client().query(self.SQL).result_rows}


def sync_prices() -> int:
    """Push the whole Django price list to ClickHouse and reload the dictionary; returns the rows written."""
    rows = expand(list(Price.objects.all()), _seen_models())
    version = time.time_ns()
    live = {row.key for row in rows}
    data = [[r.provider, r.model, r.valid_from, r.valid_to, r.input, r.output, r.cached_input, r.cache_write,
             r.reasoning, r.source, 0, version] for r in rows]
    for provider, model, valid_from in StoredPriceKeys().fetch() - live:
        data.append([provider, model, valid_from, valid_from, 0.0, 0.0, 0.0, 0.0, 0.0, "", 1, version])
    client = get_client()
    if data:
        client.insert("keel_prices", data, column_names=PRICE_COLUMNS)
    client.command(f"SYSTEM RELOAD DICTIONARY keel_price_dict{Topology.current().on_cluster}")
    return len(rows)


def save_price(price: Price) -> Price:
    """Validate, store and sync one price (the admin and the API go through here)."""
    price.full_clean()
    with transaction.atomic():
        price.save()
    sync_prices()
    return price


def delete_price(price: Price) -> None:
    price.delete()
    sync_prices()


def load_default_prices(path: Path = DEFAULT_PRICES_FILE, replace: bool = False) -> tuple[int, int]:
    """Load the shipped dated list; existing (provider, pattern, date) rows are kept unless ``replace``.

    Returns (created, updated) and syncs ClickHouse.
    """
    document = json.loads(path.read_text())
    source = f"{document['source']} (as of {document['as_of']})"
    created = updated = 0
    with transaction.atomic():
        for entry in document["prices"]:
            fields = {
                "input_per_mtok": Decimal(str(entry["input"])),
                "output_per_mtok": Decimal(str(entry["output"])),
                "cached_input_per_mtok": _decimal(entry.get("cached_input")),
                "cache_write_per_mtok": _decimal(entry.get("cache_write")),
                "reasoning_per_mtok": _decimal(entry.get("reasoning")),
                "source": source,
            }
            key = {"provider": entry["provider"], "model_pattern": entry["model"],
                   "valid_from": dt.date.fromisoformat(entry.get("valid_from", document["valid_from"]))}
            existing = Price.objects.filter(**key).first()
            if existing is None:
                Price.objects.create(**key, **fields)
                created += 1
            elif replace:
                for name, value in fields.items():
                    setattr(existing, name, value)
                existing.save()
                updated += 1
    sync_prices()
    return created, updated


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
