"""Every CREATE statement Keel owns, as functions of the topology and retention settings.

Migrations call these at the version they were written for; the test suite renders them for a cluster to check
the replicated/distributed variants.
"""

from __future__ import annotations

from django.conf import settings

from ingestion.clickhouse.ddl import Topology, ttl_days
from ingestion.normalise import llm_calls_select

SPAN_TABLE = "otel_traces"
CALLS_TABLE = "llm_calls"
ROLLUP_1M = "rollups_1m"
ROLLUP_1H = "rollups_1h"
PRICES_TABLE = "keel_prices"
PROJECTS_TABLE = "keel_projects"

QUANTILES = "0.5, 0.9, 0.95, 0.99"
# t-digest states stay small (bounded centroids) however many calls a rollup row holds, so long-range reads merge
# a few MB instead of every sampled value; the reservoir-sampling `quantiles` state is ~4x larger.
QUANTILE_FUNCTION = "quantilesTDigest"


def quantiles_merge(column: str) -> str:
    """Merged quantiles array ([p50, p90, p95, p99]) of a rollup quantile-state column."""
    return f"{QUANTILE_FUNCTION}Merge({QUANTILES})({column})"


def quantiles_state(expr: str, condition: str = "") -> str:
    if condition:
        return f"{QUANTILE_FUNCTION}StateIf({QUANTILES})({expr}, {condition})"
    return f"{QUANTILE_FUNCTION}State({QUANTILES})({expr})"


def otel_traces(t: Topology) -> list[str]:
    """Column-for-column superset of the OTel Collector exporter's ``otel_traces``, project first.

    ``ProjectId`` defaults to the ``keel.project_id`` resource attribute, so a Collector writing this table
    directly (``create_schema: false``) still tags its rows with the tenant.
    """
    table = t.local(SPAN_TABLE)
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}{t.on_cluster} (
    ProjectId LowCardinality(String) DEFAULT ResourceAttributes['keel.project_id'] CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = {t.engine('', SPAN_TABLE)}
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ProjectId, ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ProjectId, ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
{ttl_days('Timestamp', settings.KEEL_RAW_TTL_DAYS)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000""",
        *t.distributed(SPAN_TABLE, "cityHash64(TraceId)"),
    ]


def prices(t: Topology) -> list[str]:
    """Effective-dated prices (synced from Django by ``ingestion.prices``) and the range dictionary the calls view
    prices with.

    A sync inserts every current row under a new ``version`` plus a ``deleted`` tombstone for rows that are gone, in
    one insert; the dictionary reads the newest version of each (provider, model, valid_from). ``provider = ''``
    rows apply to any provider. Cached, cache-write and reasoning prices are resolved (defaulted to the
    input/output price) by the sync.
    """
    table = t.local(PRICES_TABLE)
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}{t.on_cluster} (
    provider LowCardinality(String),
    model String,
    valid_from Date,
    valid_to Date,
    input_per_mtok Float64,
    output_per_mtok Float64,
    cached_input_per_mtok Float64,
    cache_write_per_mtok Float64,
    reasoning_per_mtok Float64,
    source String,
    deleted UInt8 DEFAULT 0,
    version UInt64
) ENGINE = {t.engine('Replacing', PRICES_TABLE, 'version')}
ORDER BY (provider, model, valid_from)""",
        *t.distributed(PRICES_TABLE),
        f"""CREATE DICTIONARY IF NOT EXISTS keel_price_dict{t.on_cluster} (
    provider String,
    model String,
    valid_from Date,
    valid_to Date,
    input_per_mtok Float64,
    output_per_mtok Float64,
    cached_input_per_mtok Float64,
    cache_write_per_mtok Float64,
    reasoning_per_mtok Float64
)
PRIMARY KEY provider, model
SOURCE(CLICKHOUSE(QUERY 'SELECT provider, model, valid_from, argMax(valid_to, version) AS valid_to,
  argMax(input_per_mtok, version) AS input_per_mtok, argMax(output_per_mtok, version) AS output_per_mtok,
  argMax(cached_input_per_mtok, version) AS cached_input_per_mtok,
  argMax(cache_write_per_mtok, version) AS cache_write_per_mtok,
  argMax(reasoning_per_mtok, version) AS reasoning_per_mtok
  FROM {t.database}.{table} GROUP BY provider, model, valid_from HAVING argMax(deleted, version) = 0'))
LIFETIME(MIN 0 MAX 30)
LAYOUT(COMPLEX_KEY_RANGE_HASHED())
RANGE(MIN valid_from MAX valid_to)""",
    ]


def projects(t: Topology) -> list[str]:
    """Per-project switches the insert path needs (cost precedence, content capture, extra PII patterns).

    Written only by :mod:`ingestion.project_sync`; ``version`` makes the newest write win.
    """
    table = t.local(PROJECTS_TABLE)
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}{t.on_cluster} (
    ProjectId String,
    client_cost_wins UInt8,
    content_capture LowCardinality(String) DEFAULT 'redacted',
    extra_pattern String DEFAULT '',
    version UInt64
) ENGINE = {t.engine('Replacing', PROJECTS_TABLE, 'version')}
ORDER BY ProjectId""",
        *t.distributed(PROJECTS_TABLE),
        f"""CREATE DICTIONARY IF NOT EXISTS keel_project_dict{t.on_cluster} (
    ProjectId String,
    client_cost_wins UInt8,
    content_capture String DEFAULT 'redacted',
    extra_pattern String DEFAULT ''
)
PRIMARY KEY ProjectId
SOURCE(CLICKHOUSE(QUERY 'SELECT ProjectId, argMax(client_cost_wins, version) AS client_cost_wins,
  argMax(content_capture, version) AS content_capture, argMax(extra_pattern, version) AS extra_pattern
  FROM {t.database}.{table} GROUP BY ProjectId'))
LIFETIME(MIN 0 MAX 30)
LAYOUT(COMPLEX_KEY_HASHED())""",
    ]


def llm_calls(t: Topology) -> list[str]:
    """One typed row per inference call; ReplacingMergeTree collapses a re-stored (trace, span)."""
    table = t.local(CALLS_TABLE)
    content_ttl = f"TTL toDateTime(Timestamp) + toIntervalDay({int(settings.KEEL_CONTENT_TTL_DAYS)})"
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}{t.on_cluster} (
    ProjectId LowCardinality(String),
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String),
    Environment LowCardinality(String),
    Route LowCardinality(String),
    Provider LowCardinality(String),
    RequestModel LowCardinality(String),
    ResponseModel LowCardinality(String),
    Operation LowCardinality(String),
    SpanName LowCardinality(String),
    StatusCode LowCardinality(String),
    IsError UInt8,
    ErrorType LowCardinality(String),
    DurationMs Float64 CODEC(Gorilla, ZSTD(1)),
    TtftMs Nullable(Float64),
    Streamed UInt8,
    InputTokens UInt32 CODEC(T64, ZSTD(1)),
    OutputTokens UInt32 CODEC(T64, ZSTD(1)),
    CacheReadTokens UInt32 CODEC(T64, ZSTD(1)),
    CacheWriteTokens UInt32 CODEC(T64, ZSTD(1)),
    ReasoningTokens UInt32 CODEC(T64, ZSTD(1)),
    HasUsage UInt8,
    InputCost Nullable(Float64),
    OutputCost Nullable(Float64),
    TotalCost Nullable(Float64),
    Priced UInt8,
    CostSource LowCardinality(String),
    PriceModel LowCardinality(String),
    FinishReasons Array(LowCardinality(String)),
    CostCenter LowCardinality(String),
    UserId String CODEC(ZSTD(1)),
    SessionId String CODEC(ZSTD(1)),
    GatewayDeploymentId LowCardinality(String),
    ScopeName LowCardinality(String),
    ScopeVersion LowCardinality(String),
    Conventions Array(LowCardinality(String)),
    Truncated UInt8,
    InputContent String CODEC(ZSTD(1)) {content_ttl},
    OutputContent String CODEC(ZSTD(1)) {content_ttl},
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_user UserId TYPE bloom_filter(0.01) GRANULARITY 2
) ENGINE = {t.engine('Replacing', CALLS_TABLE)}
PARTITION BY toDate(Timestamp)
ORDER BY (ProjectId, toDate(Timestamp), Route, ResponseModel, Timestamp, TraceId, SpanId)
{ttl_days('Timestamp', settings.KEEL_RAW_TTL_DAYS)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1""",
        *t.distributed(CALLS_TABLE, "cityHash64(TraceId)"),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv{t.on_cluster} TO {table} AS "
        + llm_calls_select(t.local(SPAN_TABLE)),
    ]


def vertical_merges(t: Topology) -> list[str]:
    """The wide tables merge vertically from their first merge on (ClickHouse waits for 131,072 rows by default).

    Measured on benchmark spans (10 parts of 8,192 rows): 12.3 → 8.8 ms of CPU per 1,000 spans merged for
    ``otel_traces``, 7.9 → 6.2 for ``llm_calls``.
    """
    return [
        f"ALTER TABLE {t.local(table)}{t.on_cluster} MODIFY SETTING vertical_merge_algorithm_min_rows_to_activate = 1, "
        "vertical_merge_algorithm_min_columns_to_activate = 1"
        for table in (SPAN_TABLE, CALLS_TABLE)
    ]


def _rollup_columns(time_column: str) -> str:
    return f"""
    ProjectId LowCardinality(String),
    {time_column} DateTime,
    Environment LowCardinality(String),
    Route LowCardinality(String),
    ServiceName LowCardinality(String),
    Provider LowCardinality(String),
    ResponseModel LowCardinality(String),
    CostCenter LowCardinality(String),
    Calls SimpleAggregateFunction(sum, UInt64),
    Errors SimpleAggregateFunction(sum, UInt64),
    Streamed SimpleAggregateFunction(sum, UInt64),
    InputTokens SimpleAggregateFunction(sum, UInt64),
    OutputTokens SimpleAggregateFunction(sum, UInt64),
    CacheReadTokens SimpleAggregateFunction(sum, UInt64),
    ReasoningTokens SimpleAggregateFunction(sum, UInt64),
    Cost SimpleAggregateFunction(sum, Float64),
    UnpricedCalls SimpleAggregateFunction(sum, UInt64),
    DurationMsSum SimpleAggregateFunction(sum, Float64),
    ErrorTypes SimpleAggregateFunction(sumMap, Map(String, UInt64)),
    FinishReasons SimpleAggregateFunction(sumMap, Map(String, UInt64)),
    LatencyQ AggregateFunction({QUANTILE_FUNCTION}({QUANTILES}), Float64),
    TtftQ AggregateFunction({QUANTILE_FUNCTION}({QUANTILES}), Float64),
    OutputTokensQ AggregateFunction({QUANTILE_FUNCTION}({QUANTILES}), UInt32),
    InputTokensQ AggregateFunction({QUANTILE_FUNCTION}({QUANTILES}), UInt32)"""


def _rollup_select(time_expr: str, time_column: str, source: str) -> str:
    # Source columns are qualified (c.X) because the aggregates reuse their names as aliases.
    return f"""SELECT
    c.ProjectId AS ProjectId, {time_expr} AS {time_column}, c.Environment AS Environment, c.Route AS Route,
    c.ServiceName AS ServiceName, c.Provider AS Provider, c.ResponseModel AS ResponseModel,
    c.CostCenter AS CostCenter,
    count() AS Calls,
    sum(c.IsError) AS Errors,
    sum(c.Streamed) AS Streamed,
    sum(c.InputTokens) AS InputTokens,
    sum(c.OutputTokens) AS OutputTokens,
    sum(c.CacheReadTokens) AS CacheReadTokens,
    sum(c.ReasoningTokens) AS ReasoningTokens,
    sum(ifNull(c.TotalCost, 0)) AS Cost,
    countIf(c.Priced = 0) AS UnpricedCalls,
    sum(c.DurationMs) AS DurationMsSum,
    sumMap(map(if(c.ErrorType = '', '_none', toString(c.ErrorType)), toUInt64(c.IsError))) AS ErrorTypes,
    sumMap(map(if(empty(c.FinishReasons), '_none', toString(c.FinishReasons[1])), toUInt64(1))) AS FinishReasons,
    {quantiles_state("c.DurationMs")} AS LatencyQ,
    {quantiles_state("ifNull(c.TtftMs, 0)", "c.TtftMs IS NOT NULL")} AS TtftQ,
    {quantiles_state("c.OutputTokens")} AS OutputTokensQ,
    {quantiles_state("c.InputTokens")} AS InputTokensQ
FROM {source} AS c
GROUP BY ProjectId, {time_column}, Environment, Route, ServiceName, Provider, ResponseModel, CostCenter"""


def rollups(t: Topology) -> list[str]:
    """Per-minute and per-hour aggregates per project × route × service × provider × model version."""
    statements: list[str] = []
    for table, time_column, time_expr, partition in (
        (ROLLUP_1M, "Minute", "toStartOfMinute(c.Timestamp)", "toYYYYMMDD(Minute)"),
        (ROLLUP_1H, "Hour", "toStartOfHour(c.Timestamp)", "toYYYYMM(Hour)"),
    ):
        local = t.local(table)
        statements += [
            f"""CREATE TABLE IF NOT EXISTS {local}{t.on_cluster} ({_rollup_columns(time_column)}
) ENGINE = {t.engine('Aggregating', table)}
PARTITION BY {partition}
ORDER BY (ProjectId, toDate({time_column}), Route, ResponseModel, ServiceName, Provider, Environment, CostCenter,
          {time_column})
{ttl_days(time_column, settings.KEEL_ROLLUP_TTL_DAYS)}
SETTINGS ttl_only_drop_parts = 1""",
            *t.distributed(table),
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {local}_mv{t.on_cluster} TO {local} AS "
            + _rollup_select(time_expr, time_column, t.local(CALLS_TABLE)),
        ]
    return statements


ROLLUP_USER_1H = "rollups_user_1h"


def user_rollup(t: Topology) -> list[str]:
    """Per-user hourly spend: calls, cost, unpriced calls and tokens per project × hour × user × environment.

    Users are too many for the dimension rollups (their key would multiply every series), so this table carries
    only what the Cost page's by-user chart needs. Environment is the one filter dimension kept: it is nearly
    free (a user rarely spans environments) and "prod only" is the common filter; other filters read
    ``llm_calls``. Every column is a plain sum, so the view costs ingest one small GROUP BY per insert block.
    ``UserId`` is dictionary-encoded: a 30-day read groups ~4 M rows by dictionary position, about twice as fast
    as by string (and LZ4, not ZSTD, because this column is read whole on every long-range view).
    """
    local = t.local(ROLLUP_USER_1H)
    return [
        f"""CREATE TABLE IF NOT EXISTS {local}{t.on_cluster} (
    ProjectId LowCardinality(String),
    Hour DateTime,
    UserId LowCardinality(String),
    Environment LowCardinality(String),
    Calls SimpleAggregateFunction(sum, UInt64),
    Cost SimpleAggregateFunction(sum, Float64),
    UnpricedCalls SimpleAggregateFunction(sum, UInt64),
    InputTokens SimpleAggregateFunction(sum, UInt64),
    OutputTokens SimpleAggregateFunction(sum, UInt64)
) ENGINE = {t.engine('Aggregating', ROLLUP_USER_1H)}
PARTITION BY toYYYYMM(Hour)
ORDER BY (ProjectId, toDate(Hour), UserId, Environment, Hour)
{ttl_days('Hour', settings.KEEL_ROLLUP_TTL_DAYS)}
SETTINGS ttl_only_drop_parts = 1""",
        *t.distributed(ROLLUP_USER_1H),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {local}_mv{t.on_cluster} TO {local} AS "
        + _user_rollup_select(t.local(CALLS_TABLE)),
    ]


def _user_rollup_select(source: str) -> str:
    return f"""SELECT
    c.ProjectId AS ProjectId, toStartOfHour(c.Timestamp) AS Hour, c.UserId AS UserId, c.Environment AS Environment,
    count() AS Calls,
    sum(ifNull(c.TotalCost, 0)) AS Cost,
    countIf(c.Priced = 0) AS UnpricedCalls,
    sum(c.InputTokens) AS InputTokens,
    sum(c.OutputTokens) AS OutputTokens
FROM {source} AS c
GROUP BY ProjectId, Hour, UserId, Environment"""


def user_rollup_backfill(t: Topology) -> str:
    """Fill the per-user rollup from the calls already stored (run once, right after its view exists).

    In cluster mode it reads and writes through the Distributed tables from the node that migrates. A call
    stored between the view's creation and this insert is counted twice, so migrate before ingest starts (as
    ``make run`` and the deploy do).
    """
    return f"INSERT INTO {ROLLUP_USER_1H} " + _user_rollup_select(CALLS_TABLE)


SERIES_1M = "series_1m"
SERIES_1M_LEDGER = "series_1m_finalised"


def series_1m(t: Topology) -> list[str]:
    """Finalised per-minute metrics of every detector series, for minutes past the settle horizon.

    Written only by :mod:`anomaly.finalised`: one row per project × grouping × series × minute with the quantiles
    already computed (Float32, the type ``quantilesTDigestMerge`` returns) and the sums as the sweep reads them, so a
    cold sweep scans plain floats instead of merging a week of t-digest states. Column names are the sweep's metric
    names. A minute whose rollups changed after it was finalised (late spans) is written again with a higher
    ``version``; readers use ``FINAL``. The ledger records which minutes are finalised and the rollup call count they
    were finalised from (the commit record: written after the rows, compared with the rollups to find late data).
    Both keep the rollups' TTL, so a minute is never in the ledger without its rows.
    """
    table, ledger = t.local(SERIES_1M), t.local(SERIES_1M_LEDGER)
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}{t.on_cluster} (
    ProjectId LowCardinality(String),
    Grouping LowCardinality(String),
    Series UInt64,
    Minute DateTime,
    Environment LowCardinality(String),
    Route LowCardinality(String),
    ResponseModel LowCardinality(String),
    ServiceName LowCardinality(String),
    ErrorType LowCardinality(String),
    calls Float64 CODEC(ZSTD(1)),
    errors Float64 CODEC(ZSTD(1)),
    streamed Float64 CODEC(ZSTD(1)),
    input_tokens Float64 CODEC(ZSTD(1)),
    output_tokens Float64 CODEC(ZSTD(1)),
    cost Float64 CODEC(ZSTD(1)),
    unpriced Float64 CODEC(ZSTD(1)),
    duration_ms Float64 CODEC(ZSTD(1)),
    latency_p95 Float32 CODEC(ZSTD(1)),
    latency_p99 Float32 CODEC(ZSTD(1)),
    ttft_p95 Float32 CODEC(ZSTD(1)),
    type_errors Float64 CODEC(ZSTD(1)),
    version UInt64
) ENGINE = {t.engine('Replacing', SERIES_1M, 'version')}
PARTITION BY toYYYYMMDD(Minute)
ORDER BY (ProjectId, Grouping, Series, Minute)
{ttl_days('Minute', settings.KEEL_ROLLUP_TTL_DAYS)}
SETTINGS ttl_only_drop_parts = 1""",
        *t.distributed(SERIES_1M, "cityHash64(ProjectId, Series)"),
        f"""CREATE TABLE IF NOT EXISTS {ledger}{t.on_cluster} (
    ProjectId LowCardinality(String),
    Minute DateTime,
    Calls UInt64,
    version UInt64
) ENGINE = {t.engine('Replacing', SERIES_1M_LEDGER, 'version')}
PARTITION BY toYYYYMMDD(Minute)
ORDER BY (ProjectId, Minute)
{ttl_days('Minute', settings.KEEL_ROLLUP_TTL_DAYS)}
SETTINGS ttl_only_drop_parts = 1""",
        *t.distributed(SERIES_1M_LEDGER, "cityHash64(ProjectId)"),
    ]
