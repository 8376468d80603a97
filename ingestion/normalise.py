"""Map every GenAI convention in the wild onto one LLM-call row, as ClickHouse expressions.

The same expressions run in the materialized view over the raw span table, so spans that arrive through
Keel's OTLP endpoint and spans a Collector writes straight into ClickHouse produce identical ``llm_calls`` rows.
Each canonical field lists its source keys in precedence order (first present wins); see
``tests/ingestion/test_normalise.py`` for the table of cases.
"""

from __future__ import annotations

from dataclasses import dataclass

A = "SpanAttributes"
R = "ResourceAttributes"


def _q(key: str) -> str:
    return "'" + key.replace("\\", "\\\\").replace("'", "\\'") + "'"


def first_string(keys: list[str], source: str = A) -> str:
    """First non-empty attribute value among ``keys`` ('' when none)."""
    parts = [f"nullIf({source}[{_q(k)}], '')" for k in keys]
    return f"coalesce({', '.join(parts)}, '')" if len(parts) > 1 else f"{source}[{_q(keys[0])}]"


def first_number(keys: list[str], source: str = A) -> str:
    """First attribute among ``keys`` that parses as a number (NULL when none)."""
    parts = [f"toFloat64OrNull({source}[{_q(k)}])" for k in keys]
    return f"coalesce({', '.join(parts)})" if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class Field:
    name: str
    keys: list[str]


OPERATION_KEYS = ["gen_ai.operation.name", "openinference.span.kind", "llm.request.type", "langfuse.observation.type",
                  "ai.operationId", "traceloop.span.kind"]
PROVIDER_KEYS = ["gen_ai.provider.name", "gen_ai.system", "llm.system", "llm.provider", "ai.model.provider"]
REQUEST_MODEL_KEYS = ["gen_ai.request.model", "embedding.model_name", "ai.model.id", "langfuse.observation.model.name",
                      "llm.request.model_name"]
RESPONSE_MODEL_KEYS = ["gen_ai.response.model", "llm.model_name", "llm.response.model_name", "ai.response.model"]
INPUT_TOKEN_KEYS = ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                    "ai.usage.inputTokens", "ai.usage.promptTokens"]
OUTPUT_TOKEN_KEYS = ["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
                     "ai.usage.outputTokens", "ai.usage.completionTokens"]
CACHE_READ_KEYS = ["gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                   "llm.token_count.prompt_details.cache_read", "ai.usage.cachedInputTokens"]
CACHE_WRITE_KEYS = ["gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
                    "llm.token_count.prompt_details.cache_write"]
REASONING_KEYS = ["gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens", "llm.usage.reasoning_tokens",
                  "llm.token_count.completion_details.reasoning", "ai.usage.reasoningTokens"]
CLIENT_COST_KEYS = ["llm.cost.total", "gen_ai.usage.cost", "gen_ai.cost.total_cost", "litellm.cost.total"]
ROUTE_KEYS = ["keel.route", "litellm.model_group"]
ENVIRONMENT_KEYS = ["deployment.environment.name", "deployment.environment"]
COST_CENTER_KEYS = ["keel.cost_center", "cost_center"]
USER_KEYS = ["user.id", "enduser.id", "gen_ai.request.user", "langfuse.user.id"]
SESSION_KEYS = ["gen_ai.conversation.id", "session.id", "langfuse.session.id"]
INPUT_CONTENT_KEYS = ["gen_ai.input.messages", "gen_ai.prompt", "input.value", "ai.prompt.messages", "ai.prompt",
                      "langfuse.observation.input"]
OUTPUT_CONTENT_KEYS = ["gen_ai.output.messages", "gen_ai.completion", "output.value", "ai.response.text",
                       "langfuse.observation.output"]

# Canonical operations of one inference call (leaf spans that carry usage); agents and tools are not counted.
CANONICAL_INFERENCE = ["chat", "text_completion", "generate_content", "embeddings"]

# Convention markers: (name, ClickHouse condition over the span).
CONVENTIONS: list[tuple[str, str]] = [
    ("otel_genai", f"mapContains({A}, 'gen_ai.provider.name') OR mapContains({A}, 'gen_ai.operation.name')"),
    ("otel_genai_deprecated", f"mapContains({A}, 'gen_ai.system') OR mapContains({A}, 'gen_ai.usage.prompt_tokens')"),
    ("openinference", f"mapContains({A}, 'openinference.span.kind')"),
    ("openllmetry", f"mapContains({A}, 'llm.request.type') OR mapContains({A}, 'gen_ai.is_streaming') "
                    f"OR startsWith(ScopeName, 'opentelemetry.instrumentation.openai')"),
    ("openlit", f"{R}['telemetry.sdk.name'] = 'openlit' OR {A}['telemetry.sdk.name'] = 'openlit' "
                f"OR startsWith(ScopeName, 'openlit')"),
    ("litellm", f"mapContains({A}, 'litellm.call_id') OR ScopeName = 'litellm'"),
    ("vercel_ai", f"mapContains({A}, 'ai.operationId') OR mapContains({A}, 'ai.model.id')"),
    ("langfuse", f"mapContains({A}, 'langfuse.observation.type')"),
    ("keel", f"mapContains({A}, 'keel.route')"),
]


def _operation_expr() -> str:
    raw = first_string(OPERATION_KEYS)
    return (
        f"multiIf(lower({raw}) IN ('llm'), 'chat', lower({raw}) IN ('embedding'), 'embeddings', "
        f"lower({raw}) = 'generation', 'chat', lower({raw}) IN ('completion', 'acompletion') "
        f"AND SpanName = 'litellm_request', 'chat', lower({raw}) = 'completion', 'text_completion', "
        f"startsWith({raw}, 'ai.') AND position({raw}, 'mbed') > 0, 'embeddings', "
        f"startsWith({raw}, 'ai.'), 'chat', "
        f"{raw} = '' AND ({first_string(REQUEST_MODEL_KEYS)} != '' OR {first_string(RESPONSE_MODEL_KEYS)} != ''), "
        f"'chat', lower({raw}))"
    )


def _provider_expr() -> str:
    raw = f"lower({first_string(PROVIDER_KEYS)})"
    return (
        f"transform({raw}, "
        "['xai', 'az.ai.inference', 'az.ai.openai', 'vertex_ai', 'vertexai', 'gemini', 'mistralai', 'aws', 'azure'], "
        "['x_ai', 'azure.ai.inference', 'azure.ai.openai', 'gcp.vertex_ai', 'gcp.vertex_ai', 'gcp.gemini', "
        f"'mistral_ai', 'aws.bedrock', 'azure.ai.openai'], {raw})"
    )


LLM_CALL_COLUMNS = [
    "ProjectId", "Timestamp", "TraceId", "SpanId", "ParentSpanId", "ServiceName", "Environment", "Route", "Provider",
    "RequestModel", "ResponseModel", "Operation", "SpanName", "StatusCode", "IsError", "ErrorType", "DurationMs",
    "TtftMs", "Streamed", "InputTokens", "OutputTokens", "CacheReadTokens", "CacheWriteTokens", "ReasoningTokens",
    "InputCost", "OutputCost", "TotalCost", "Priced", "CostSource", "FinishReasons", "CostCenter", "UserId",
    "SessionId", "GatewayDeploymentId", "ScopeName", "ScopeVersion", "Conventions", "InputContent", "OutputContent",
]


def llm_calls_select(source_table: str) -> str:
    """SELECT that turns raw spans into ``llm_calls`` rows (used by the materialized view)."""
    return f"SELECT {', '.join(LLM_CALL_COLUMNS)} FROM ({_normalising_select(source_table)})"


def _normalising_select(source_table: str) -> str:
    operation = _operation_expr()
    conventions = ", ".join(f"if({cond}, '{name}', '')" for name, cond in CONVENTIONS)
    request_model = first_string(REQUEST_MODEL_KEYS)
    response_model = first_string(RESPONSE_MODEL_KEYS)
    usage = f"{A}['langfuse.observation.usage_details']"
    in_tokens = (
        f"toUInt32(ifNull(coalesce({first_number(INPUT_TOKEN_KEYS)}, JSONExtract({usage}, 'input', 'Nullable(Float64)') "
        f"+ ifNull(JSONExtract({usage}, 'cache_read_input_tokens', 'Nullable(Float64)'), 0)), 0))"
    )
    out_tokens = (
        f"toUInt32(ifNull(coalesce({first_number(OUTPUT_TOKEN_KEYS)}, "
        f"JSONExtract({usage}, 'output', 'Nullable(Float64)')), 0))"
    )
    cache_read = f"toUInt32(ifNull({first_number(CACHE_READ_KEYS)}, 0))"
    cache_write = f"toUInt32(ifNull({first_number(CACHE_WRITE_KEYS)}, 0))"
    reasoning = f"toUInt32(ifNull({first_number(REASONING_KEYS)}, 0))"
    client_cost = (
        f"coalesce(JSONExtract({A}['langfuse.observation.cost_details'], 'total', 'Nullable(Float64)'), "
        f"{first_number(CLIENT_COST_KEYS)})"
    )
    ttft_seconds = (
        f"coalesce({first_number(['gen_ai.response.time_to_first_chunk', 'gen_ai.server.time_to_first_token'])}, "
        "if(has(Events.Name, 'First Token Stream Event'), "
        "dateDiff('microsecond', Timestamp, arrayElement(Events.Timestamp, indexOf(Events.Name, 'First Token Stream Event'))) "
        "/ 1e6, NULL), "
        f"{first_number(['ai.response.msToFirstChunk', 'ai.stream.msToFirstChunk'])} / 1000, "
        f"if({A}['langfuse.observation.completion_start_time'] != '', "
        f"dateDiff('microsecond', Timestamp, parseDateTime64BestEffortOrNull({A}['langfuse.observation.completion_start_time'], 6)) / 1e6, NULL))"
    )
    streamed = (
        f"toUInt8(lower({first_string(['gen_ai.request.stream', 'gen_ai.is_streaming', 'llm.is_streaming'])}) "
        f"IN ('true', '1') OR ttft_s IS NOT NULL)"
    )
    finish_raw = first_string(["gen_ai.response.finish_reasons", "llm.finish_reason", "llm.response.finish_reason",
                               "ai.response.finishReason"])
    finish = (
        f"arrayFilter(x -> x != '', if(startsWith({finish_raw}, '['), "
        f"JSONExtract({finish_raw}, 'Array(String)'), [{finish_raw}]))"
    )
    is_error = (
        f"toUInt8(StatusCode IN ('Error', 'STATUS_CODE_ERROR') OR {A}['error.type'] != '' "
        f"OR {A}['langfuse.observation.level'] = 'ERROR')"
    )
    error_type = (
        f"if(is_error = 1, coalesce(nullIf({A}['error.type'], ''), "
        "nullIf(arrayElement(Events.Attributes, indexOf(Events.Name, 'exception'))['exception.type'], ''), "
        "'error'), '')"
    )
    # Price lookup: exact model first, then the model without a date/version suffix.
    price_key = (
        "if(dictHas('keel_price_dict', tuple(price_model), toDate(Timestamp)), price_model, "
        "replaceRegexpOne(price_model, '(-\\\\d{4}-\\\\d{2}-\\\\d{2}|-\\\\d{8}|@.*|:.*)$', ''))"
    )
    return f"""
SELECT
    ProjectId,
    Timestamp,
    TraceId,
    SpanId,
    ParentSpanId,
    ServiceName,
    {first_string(ENVIRONMENT_KEYS, R)} AS Environment,
    coalesce(nullIf({first_string(ROUTE_KEYS)}, ''), nullIf({request_model}, ''), {response_model}) AS Route,
    {_provider_expr()} AS Provider,
    {request_model} AS RequestModel,
    coalesce(nullIf({response_model}, ''), {request_model}) AS ResponseModel,
    {operation} AS Operation,
    SpanName,
    StatusCode,
    {is_error} AS is_error,
    is_error AS IsError,
    {error_type} AS ErrorType,
    Duration / 1e6 AS DurationMs,
    {ttft_seconds} AS ttft_s,
    if(ttft_s IS NULL OR ttft_s < 0, NULL, ttft_s * 1000) AS TtftMs,
    {streamed} AS Streamed,
    {in_tokens} AS InputTokens,
    {out_tokens} AS OutputTokens,
    {cache_read} AS CacheReadTokens,
    {cache_write} AS CacheWriteTokens,
    {reasoning} AS ReasoningTokens,
    {client_cost} AS client_cost,
    coalesce(nullIf(ResponseModel, ''), RequestModel) AS price_model,
    {price_key} AS price_key,
    dictGetOrNull('keel_price_dict', 'input_per_mtok', tuple(price_key), toDate(Timestamp)) AS p_in,
    dictGetOrNull('keel_price_dict', 'output_per_mtok', tuple(price_key), toDate(Timestamp)) AS p_out,
    dictGetOrNull('keel_price_dict', 'cached_input_per_mtok', tuple(price_key), toDate(Timestamp)) AS p_cached,
    dictGetOrDefault('keel_project_dict', 'client_cost_wins', tuple(ProjectId), toUInt8(1)) AS client_wins,
    if(p_in IS NULL, NULL,
       ((InputTokens - least(CacheReadTokens, InputTokens)) * p_in
        + least(CacheReadTokens, InputTokens) * if(ifNull(p_cached, 0) > 0, p_cached, p_in)) / 1e6) AS table_in,
    if(p_out IS NULL, NULL, OutputTokens * p_out / 1e6) AS table_out,
    multiIf(client_cost IS NOT NULL AND (client_wins = 1 OR p_in IS NULL), 'client',
            p_in IS NOT NULL, 'price_table', '') AS CostSource,
    if(CostSource = 'price_table', table_in, NULL) AS InputCost,
    if(CostSource = 'price_table', table_out, NULL) AS OutputCost,
    multiIf(CostSource = 'client', client_cost, CostSource = 'price_table', table_in + table_out, NULL) AS TotalCost,
    toUInt8(CostSource != '') AS Priced,
    {finish} AS FinishReasons,
    coalesce(nullIf({first_string(COST_CENTER_KEYS)}, ''), {first_string(COST_CENTER_KEYS, R)}) AS CostCenter,
    {first_string(USER_KEYS)} AS UserId,
    {first_string(SESSION_KEYS)} AS SessionId,
    coalesce(nullIf({A}['keel.deployment_id'], ''),
             nullIf(JSONExtractString({A}['hidden_params'], 'model_id'), ''), '') AS GatewayDeploymentId,
    ScopeName,
    ScopeVersion,
    arrayFilter(x -> x != '', [{conventions}]) AS Conventions,
    {first_string(INPUT_CONTENT_KEYS)} AS InputContent,
    {first_string(OUTPUT_CONTENT_KEYS)} AS OutputContent
FROM {source_table}
WHERE SpanName != 'raw_gen_ai_request'
  AND Operation IN ({", ".join(_q(o) for o in CANONICAL_INFERENCE)})
  AND NOT (ProjectId = '')
"""
