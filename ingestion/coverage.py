"""Instrumentation coverage: for each source (scope name/version × service), which conventions Keel recognised
and how many calls lacked a model, usage or a price.

Kept as an hourly AggregatingMergeTree fed by a materialized view over ``llm_calls`` (so it is as cheap as the
rollups), read through :class:`CoverageQuery`, which always re-aggregates and requires the tenant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings

from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.ddl import Topology, ttl_days

COVERAGE_TABLE = "keel_coverage_1h"


def coverage_statements(t: Topology) -> list[str]:
    local = t.local(COVERAGE_TABLE)
    calls = t.local("llm_calls")
    return [
        f"""CREATE TABLE IF NOT EXISTS {local}{t.on_cluster} (
    ProjectId LowCardinality(String),
    Hour DateTime,
    ServiceName LowCardinality(String),
    ScopeName LowCardinality(String),
    ScopeVersion LowCardinality(String),
    Calls SimpleAggregateFunction(sum, UInt64),
    Conventions SimpleAggregateFunction(sumMap, Map(String, UInt64)),
    Operations SimpleAggregateFunction(sumMap, Map(String, UInt64)),
    MissingModel SimpleAggregateFunction(sum, UInt64),
    MissingProvider SimpleAggregateFunction(sum, UInt64),
    MissingUsage SimpleAggregateFunction(sum, UInt64),
    Unpriced SimpleAggregateFunction(sum, UInt64),
    ClientCost SimpleAggregateFunction(sum, UInt64),
    TableCost SimpleAggregateFunction(sum, UInt64),
    Streamed SimpleAggregateFunction(sum, UInt64),
    WithTtft SimpleAggregateFunction(sum, UInt64),
    Errors SimpleAggregateFunction(sum, UInt64),
    Truncated SimpleAggregateFunction(sum, UInt64),
    UnpricedModels SimpleAggregateFunction(sumMap, Map(String, UInt64))
) ENGINE = {t.engine('Aggregating', COVERAGE_TABLE)}
PARTITION BY toYYYYMM(Hour)
ORDER BY (ProjectId, ServiceName, ScopeName, ScopeVersion, Hour)
{ttl_days('Hour', settings.KEEL_ROLLUP_TTL_DAYS)}
SETTINGS ttl_only_drop_parts = 1""",
        *t.distributed(COVERAGE_TABLE),
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {local}_mv{t.on_cluster} TO {local} AS SELECT
    c.ProjectId AS ProjectId, toStartOfHour(c.Timestamp) AS Hour, c.ServiceName AS ServiceName,
    c.ScopeName AS ScopeName, c.ScopeVersion AS ScopeVersion,
    count() AS Calls,
    sumMap(mapFromArrays(arrayMap(x -> toString(x), if(empty(c.Conventions), ['none'], c.Conventions)),
                         arrayMap(x -> toUInt64(1), if(empty(c.Conventions), ['none'], c.Conventions)))) AS Conventions,
    sumMap(map(toString(c.Operation), toUInt64(1))) AS Operations,
    countIf(c.RequestModel = '' AND c.ResponseModel = '') AS MissingModel,
    countIf(c.Provider = '') AS MissingProvider,
    countIf(c.HasUsage = 0) AS MissingUsage,
    countIf(c.Priced = 0) AS Unpriced,
    countIf(c.CostSource = 'client') AS ClientCost,
    countIf(c.CostSource = 'price_table') AS TableCost,
    sum(c.Streamed) AS Streamed,
    countIf(c.TtftMs IS NOT NULL) AS WithTtft,
    sum(c.IsError) AS Errors,
    sum(c.Truncated) AS Truncated,
    sumMap(map(if(c.Priced = 0, toString(c.ResponseModel), '_priced'), toUInt64(c.Priced = 0))) AS UnpricedModels
FROM {calls} AS c
GROUP BY ProjectId, Hour, ServiceName, ScopeName, ScopeVersion""",
    ]


@dataclass(frozen=True)
class SourceCoverage:
    service: str
    scope_name: str
    scope_version: str
    calls: int
    conventions: dict[str, int]
    operations: dict[str, int]
    missing_model: int
    missing_provider: int
    missing_usage: int
    unpriced: int
    client_cost: int
    table_cost: int
    streamed: int
    with_ttft: int
    errors: int
    truncated: int
    unpriced_models: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CoverageQuery:
    """Coverage per source for one project over [since, until)."""

    tenant_id: str
    since: dt.datetime
    until: dt.datetime

    SQL = f"""SELECT ServiceName, ScopeName, ScopeVersion, sum(Calls), sumMap(Conventions), sumMap(Operations),
    sum(MissingModel), sum(MissingProvider), sum(MissingUsage), sum(Unpriced), sum(ClientCost), sum(TableCost),
    sum(Streamed), sum(WithTtft), sum(Errors), sum(Truncated), sumMap(UnpricedModels)
FROM {COVERAGE_TABLE}
WHERE ProjectId = {{tenant:String}} AND Hour >= toStartOfHour({{since:DateTime}}) AND Hour < {{until:DateTime}}
GROUP BY ServiceName, ScopeName, ScopeVersion
ORDER BY sum(Calls) DESC, ServiceName, ScopeName, ScopeVersion"""

    def __post_init__(self) -> None:
        if not self.tenant_id:
            raise ValueError("CoverageQuery needs a tenant")

    def fetch(self) -> list[SourceCoverage]:
        rows = get_client().query(
            self.SQL, parameters={"tenant": self.tenant_id, "since": self.since, "until": self.until},
        ).result_rows
        out = []
        for row in rows:
            unpriced_models = {k: int(v) for k, v in row[16].items() if k != "_priced" and v}
            (missing_model, missing_provider, missing_usage, unpriced, client_cost, table_cost, streamed, with_ttft,
             errors, truncated) = (int(v) for v in row[6:16])
            out.append(SourceCoverage(
                service=str(row[0]), scope_name=str(row[1]), scope_version=str(row[2]), calls=int(row[3]),
                conventions=_counts(row[4]), operations=_counts(row[5]), missing_model=missing_model,
                missing_provider=missing_provider, missing_usage=missing_usage, unpriced=unpriced,
                client_cost=client_cost, table_cost=table_cost, streamed=streamed, with_ttft=with_ttft, errors=errors,
                truncated=truncated, unpriced_models=unpriced_models,
            ))
        return out


def _counts(mapping: dict[str, int]) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(mapping.items()) if v}
