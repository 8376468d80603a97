"""Map every GenAI convention in the wild onto one LLM-call row, as ClickHouse expressions.

The same expressions run in the materialized view over the raw span table (and in ``reprice``), so spans that
arrive through Keel's OTLP endpoint and spans a Collector writes straight into ClickHouse produce identical
``llm_calls`` rows. Each canonical field lists its source keys in precedence order (first present wins); the
table in :data:`PRECEDENCE` is what the README shows and ``tests/ingestion/test_normalise.py`` checks case by case.

The view is on the ingest hot path, so every expression is a map lookup, a coalesce or a small ``multiIf``;
values used twice are computed once under an alias.
"""

from __future__ import annotations

import re

A = "SpanAttributes"
R = "ResourceAttributes"


def _q(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _attr(key: str, source: str = A) -> str:
    return f"{source}[{_q(key)}]"


def first_string(keys: list[str], source: str = A) -> str:
    """First non-empty attribute value among ``keys`` ('' when none)."""
    parts = [f"nullIf({_attr(k, source)}, '')" for k in keys]
    return f"coalesce({', '.join(parts)}, '')" if len(parts) > 1 else _attr(keys[0], source)


def first_number(keys: list[str], source: str = A) -> str:
    """First attribute among ``keys`` that parses as a number (NULL when none)."""
    parts = [f"toFloat64OrNull({_attr(k, source)})" for k in keys]
    return f"coalesce({', '.join(parts)})" if len(parts) > 1 else parts[0]


def _json_number(json_key: str, field: str) -> str:
    return f"JSONExtract({_attr(json_key)}, {_q(field)}, 'Nullable(Float64)')"


# --- Source keys, in precedence order -------------------------------------------------------------------------------

OPERATION_KEYS = ["gen_ai.operation.name", "openinference.span.kind", "llm.request.type", "langfuse.observation.type",
                  "ai.operationId", "traceloop.span.kind"]
PROVIDER_KEYS = ["gen_ai.provider.name", "gen_ai.system", "llm.system", "llm.provider", "ai.model.provider"]
REQUEST_MODEL_KEYS = ["gen_ai.request.model"]  # then llm.invocation_parameters.model (JSON), then the rest:
REQUEST_MODEL_FALLBACK_KEYS = ["llm.request.model_name", "embedding.model_name", "ai.model.id",
                               "langfuse.observation.model.name"]
RESPONSE_MODEL_KEYS = ["gen_ai.response.model", "llm.model_name", "llm.response.model_name", "ai.response.model"]
INPUT_TOKEN_KEYS = ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                    "ai.usage.inputTokens", "ai.usage.promptTokens", "ai.usage.tokens"]
OUTPUT_TOKEN_KEYS = ["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
                     "ai.usage.outputTokens", "ai.usage.completionTokens"]
CACHE_READ_KEYS = ["gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                   "llm.token_count.prompt_details.cache_read", "ai.usage.cachedInputTokens",
                   "ai.usage.inputTokenDetails.cacheReadTokens"]
CACHE_WRITE_KEYS = ["gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
                    "llm.token_count.prompt_details.cache_write", "ai.usage.inputTokenDetails.cacheWriteTokens"]
REASONING_KEYS = ["gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens", "llm.usage.reasoning_tokens",
                  "llm.token_count.completion_details.reasoning", "ai.usage.reasoningTokens",
                  "ai.usage.outputTokenDetails.reasoningTokens"]
LANGFUSE_USAGE = "langfuse.observation.usage_details"
LANGFUSE_COST = "langfuse.observation.cost_details"
CLIENT_COST_KEYS = ["llm.cost.total", "gen_ai.usage.cost", "gen_ai.cost.total_cost", "litellm.cost.total"]
CLIENT_INPUT_COST_KEYS = ["llm.cost.prompt", "gen_ai.cost.input_cost", "litellm.cost.input"]
CLIENT_OUTPUT_COST_KEYS = ["llm.cost.completion", "gen_ai.cost.output_cost", "litellm.cost.output"]
TTFT_SECONDS_KEYS = ["gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token"]
TTFT_MS_KEYS = ["ai.response.msToFirstChunk", "ai.stream.msToFirstChunk"]
FIRST_CHUNK_EVENTS = ["First Token Stream Event", "gen_ai.content.completion.chunk", "llm.content.completion.chunk"]
STREAM_KEYS = ["gen_ai.request.stream", "gen_ai.is_streaming", "llm.is_streaming"]
FINISH_KEYS = ["gen_ai.response.finish_reasons", "llm.finish_reason", "llm.response.finish_reason",
               "llm.response.stop_reason", "ai.response.finishReason"]
ROUTE_KEYS = ["keel.route", "litellm.model_group"]
ENVIRONMENT_KEYS = ["deployment.environment.name", "deployment.environment"]
COST_CENTER_KEYS = ["keel.cost_center", "cost_center"]
USER_KEYS = ["user.id", "enduser.id", "gen_ai.request.user", "langfuse.user.id"]
SESSION_KEYS = ["gen_ai.conversation.id", "session.id", "langfuse.session.id", "ai.telemetry.metadata.sessionId",
                "traceloop.association.properties.session_id"]
INPUT_CONTENT_KEYS = ["gen_ai.input.messages", "gen_ai.prompt", "input.value", "ai.prompt.messages", "ai.prompt",
                      "langfuse.observation.input"]
OUTPUT_CONTENT_KEYS = ["gen_ai.output.messages", "gen_ai.completion", "output.value", "ai.response.text",
                       "langfuse.observation.output"]
# Set by Keel's receiver when it shortened the span (events dropped beyond the cap, attribute values cut).
TRUNCATION_KEYS = ["keel.truncated.events", "keel.truncated.attributes"]

# Canonical operations of one inference call; only these rows are LLM calls (agents, tools, workflows and the
# AI SDK's outer spans repeat their children's usage and are not counted).
CANONICAL_INFERENCE = ["chat", "text_completion", "generate_content", "embeddings"]

# Convention markers: (name, ClickHouse condition over the span). A span may match several.
CONVENTIONS: list[tuple[str, str]] = [
    ("otel_genai", f"mapContains({A}, 'gen_ai.provider.name') OR mapContains({A}, 'gen_ai.operation.name')"),
    ("otel_genai_deprecated", f"mapContains({A}, 'gen_ai.system') OR mapContains({A}, 'gen_ai.usage.prompt_tokens') "
                              f"OR mapContains({A}, 'gen_ai.prompt.0.role')"),
    ("openinference", f"mapContains({A}, 'openinference.span.kind')"),
    # Not the scope prefix: the contrib `opentelemetry.instrumentation.openai_v2` shares it.
    ("openllmetry", f"mapContains({A}, 'gen_ai.is_streaming') OR mapContains({A}, 'llm.usage.total_tokens') "
                    f"OR mapContains({A}, 'traceloop.span.kind') OR mapContains({A}, 'gen_ai.openai.api_base') "
                    "OR ScopeName = 'opentelemetry.instrumentation.openai.v1' "
                    f"OR (mapContains({A}, 'llm.request.type') AND NOT is_litellm)"),
    ("openlit", f"{R}['telemetry.sdk.name'] = 'openlit' OR {A}['telemetry.sdk.name'] = 'openlit' "
                "OR startsWith(ScopeName, 'openlit')"),
    ("litellm", "is_litellm"),
    ("vercel_ai", f"mapContains({A}, 'ai.operationId')"),
    ("langfuse", f"mapContains({A}, 'langfuse.observation.type')"),
    ("keel", f"mapContains({A}, 'keel.route')"),
]

# Provider spellings → OTel `gen_ai.provider.name` values.
PROVIDER_RENAMES = {
    "xai": "x_ai", "az.ai.inference": "azure.ai.inference", "az.ai.openai": "azure.ai.openai",
    "vertex_ai": "gcp.vertex_ai", "vertexai": "gcp.vertex_ai", "gemini": "gcp.gemini", "google": "gcp.gemini",
    "mistralai": "mistral_ai", "mistral": "mistral_ai", "aws": "aws.bedrock", "bedrock": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock", "azure": "azure.ai.openai", "azure-openai": "azure.ai.openai",
}

# `<class 'pkg.mod.Name'>` (a Python type's repr used as error.type) → `Name`.
CLASS_REPR = r"^<class '(?:[^']*\.)?([^.']+)'>$"
FIRST_GROUP = r"\1"

# Model-name suffixes that name a snapshot of the same model: a date, a short revision, a version tag.
MODEL_SNAPSHOT_SUFFIX = r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|@\d{8}|:\d+)$"

PRECEDENCE: list[tuple[str, str]] = [
    ("Operation", "`gen_ai.operation.name` → `openinference.span.kind` → `llm.request.type` → "
                  "`langfuse.observation.type` → `ai.operationId` → `traceloop.span.kind` → `chat` when a model is "
                  "present. Values map to `chat` (`LLM`, `generation`, `acompletion`, LiteLLM `completion`, AI SDK "
                  "`*.doGenerate`/`*.doStream`), `embeddings` (`EMBEDDING`, `embedding`, `aembedding`, "
                  "`*.doEmbed`), `text_completion` (OpenLLMetry `completion`); agents/tools/chains/AI SDK outer "
                  "spans are not calls"),
    ("Provider", "`gen_ai.provider.name` → `gen_ai.system` → `llm.system` → `llm.provider` → "
                 "`ai.model.provider` (text before the first `.`), then renamed to OTel values "
                 "(`mistralai`→`mistral_ai`, `vertexai`→`gcp.vertex_ai`, `xai`→`x_ai`, …)"),
    ("RequestModel", "`gen_ai.request.model` → `llm.invocation_parameters`.model → `llm.request.model_name` → "
                     "`embedding.model_name` → `ai.model.id` → `langfuse.observation.model.name`"),
    ("ResponseModel", "behind a LiteLLM proxy (`litellm.model_group` set) `litellm.provider.model` without its "
                      "`provider/` prefix; else `gen_ai.response.model` → `llm.model_name` → "
                      "`llm.response.model_name` → `ai.response.model` → RequestModel"),
    ("Route", "`keel.route` → `litellm.model_group` → RequestModel → ResponseModel"),
    ("InputTokens", "`gen_ai.usage.input_tokens` → `gen_ai.usage.prompt_tokens` → `llm.token_count.prompt` → "
                    "`ai.usage.inputTokens` → `ai.usage.promptTokens` → `ai.usage.tokens` → Langfuse "
                    "`usage_details.input` + its cache keys. Always includes cached input: when the reported input "
                    "is smaller than cache read + cache write (Anthropic's native meaning), they are added"),
    ("OutputTokens", "`gen_ai.usage.output_tokens` → `gen_ai.usage.completion_tokens` → "
                     "`llm.token_count.completion` → `ai.usage.outputTokens` → `ai.usage.completionTokens` → "
                     "Langfuse `usage_details.output` (includes reasoning)"),
    ("CacheReadTokens", "`gen_ai.usage.cache_read.input_tokens` → `gen_ai.usage.cache_read_input_tokens` → "
                        "`llm.token_count.prompt_details.cache_read` → `ai.usage.cachedInputTokens` → "
                        "`ai.usage.inputTokenDetails.cacheReadTokens` → Langfuse `cache_read_input_tokens`/"
                        "`input_cached_tokens`"),
    ("CacheWriteTokens", "`gen_ai.usage.cache_creation.input_tokens` → `gen_ai.usage.cache_creation_input_tokens` "
                         "→ `llm.token_count.prompt_details.cache_write` → "
                         "`ai.usage.inputTokenDetails.cacheWriteTokens` → Langfuse `cache_creation_input_tokens`"),
    ("ReasoningTokens", "`gen_ai.usage.reasoning.output_tokens` → `gen_ai.usage.reasoning_tokens` → "
                        "`llm.usage.reasoning_tokens` → `llm.token_count.completion_details.reasoning` → "
                        "`ai.usage.reasoningTokens` → `ai.usage.outputTokenDetails.reasoningTokens` → Langfuse "
                        "`output_reasoning_tokens`"),
    ("TotalCost", "client-reported (when the project lets it win, or no price is known): "
                  "`langfuse.observation.cost_details`.total → `llm.cost.total` → `gen_ai.usage.cost` → "
                  "`gen_ai.cost.total_cost` → `litellm.cost.total` (a client cost of 0 for a call with tokens "
                  "counts as not reported); else the price table; else NULL (unpriced, counted)"),
    ("TtftMs", "`gen_ai.response.time_to_first_chunk` (s) → `gen_ai.server.time_to_first_token` (s) → first "
               "`First Token Stream Event`/`gen_ai.content.completion.chunk`/`llm.content.completion.chunk` event "
               "− start → `ai.response.msToFirstChunk` → `ai.stream.msToFirstChunk` → "
               "`langfuse.observation.completion_start_time` − start"),
    ("Streamed", "`gen_ai.request.stream` → `gen_ai.is_streaming` → `llm.is_streaming` (booleans or strings), "
                 "or a TTFT was found, or an AI SDK `*.doStream` span"),
    ("IsError / ErrorType", "status ERROR, `error.type` or Langfuse level `ERROR`; type = `error.type` → the "
                            "`exception` event's `exception.type` → `error` (a `<class 'pkg.Name'>` repr becomes "
                            "`Name`)"),
    ("FinishReasons", "`gen_ai.response.finish_reasons` (array or JSON string) → `llm.finish_reason` → "
                      "`llm.response.finish_reason` → `llm.response.stop_reason` → `ai.response.finishReason`"),
    ("GatewayDeploymentId", "`keel.deployment_id` → LiteLLM `hidden_params`.model_id → "
                            "`litellm.provider.model`@`server.address`:`server.port` (LiteLLM v2)"),
    ("SessionId", "`gen_ai.conversation.id` → `session.id` → `langfuse.session.id` → "
                  "`ai.telemetry.metadata.sessionId` → `traceloop.association.properties.session_id`"),
    ("Counted", "only inference spans (operations above); LiteLLM's `raw_gen_ai_request` child is skipped so a "
                "LiteLLM call counts once"),
]


def precedence_markdown() -> str:
    """The precedence table as README-ready markdown (generated from the same constants the view uses)."""
    rows = "\n".join(f"| {name} | {order} |" for name, order in PRECEDENCE)
    return "| column | sources, first present wins |\n|---|---|\n" + rows + "\n"


# --- Expressions ------------------------------------------------------------------------------------------------------


def _operation_expr() -> str:
    """`raw_op` (first present source value, lower-cased) → canonical operation."""
    return (
        "multiIf("
        "raw_op IN ('chat', 'text_completion', 'generate_content', 'embeddings'), raw_op, "
        "raw_op IN ('llm', 'generation', 'acompletion'), 'chat', "
        "raw_op IN ('embedding', 'aembedding'), 'embeddings', "
        "raw_op = 'completion', if(is_litellm, 'chat', 'text_completion'), "
        "startsWith(raw_op, 'ai.'), multiIf(endsWith(raw_op, '.dogenerate') OR endsWith(raw_op, '.dostream'), 'chat', "
        "endsWith(raw_op, '.doembed'), 'embeddings', raw_op = 'ai.toolcall', 'execute_tool', 'invoke_workflow'), "
        "raw_op IN ('agent'), 'invoke_agent', "
        "raw_op IN ('tool'), 'execute_tool', "
        "raw_op IN ('chain', 'workflow', 'task'), 'invoke_workflow', "
        "raw_op IN ('retriever'), 'retrieval', "
        "raw_op IN ('reranker'), 'rerank', "
        "raw_op = '' AND (RequestModel != '' OR raw_response_model != ''), 'chat', "
        "raw_op)"
    )


def _provider_expr() -> tuple[str, str]:
    """(canonical provider from `raw_provider`, the `raw_provider` expression)."""
    vercel = f"{A}['ai.model.provider']"
    raw = f"lower({first_string(PROVIDER_KEYS)})"
    # The AI SDK writes `openai.chat` into both ai.model.provider and gen_ai.system: keep the text before the '.'.
    raw = f"if({vercel} != '' AND {raw} = lower({vercel}), splitByChar('.', {raw})[1], {raw})"
    keys = "[" + ", ".join(_q(k) for k in PROVIDER_RENAMES) + "]"
    values = "[" + ", ".join(_q(v) for v in PROVIDER_RENAMES.values()) + "]"
    return f"transform(raw_provider, {keys}, {values}, raw_provider)", raw


def _langfuse_usage(field: str) -> str:
    return _json_number(LANGFUSE_USAGE, field)


def _columns() -> list[tuple[str, str]]:
    """(alias, expression) pairs in dependency order; the view selects the public ones by name."""
    provider, raw_provider = _provider_expr()
    litellm_provider_model = f"replaceRegexpOne({A}['litellm.provider.model'], '^[^/]*/', '')"
    request_model = (
        f"coalesce(nullIf({A}['gen_ai.request.model'], ''), "
        f"nullIf(JSONExtractString({A}['llm.invocation_parameters'], 'model'), ''), "
        f"{first_string(REQUEST_MODEL_FALLBACK_KEYS)})"
    )
    response_model = (
        f"if({A}['litellm.model_group'] != '' AND {litellm_provider_model} != '', {litellm_provider_model}, "
        f"{first_string(RESPONSE_MODEL_KEYS)})"
    )
    lf_in = _langfuse_usage("input")
    lf_cache_read = f"coalesce({_langfuse_usage('cache_read_input_tokens')}, {_langfuse_usage('input_cached_tokens')})"
    lf_cache_write = _langfuse_usage("cache_creation_input_tokens")
    raw_in = (
        f"coalesce({first_number(INPUT_TOKEN_KEYS)}, "
        f"{lf_in} + ifNull({lf_cache_read}, 0) + ifNull({lf_cache_write}, 0))"
    )
    out = f"coalesce({first_number(OUTPUT_TOKEN_KEYS)}, {_langfuse_usage('output')})"
    cache_read = f"coalesce({first_number(CACHE_READ_KEYS)}, {lf_cache_read})"
    cache_write = f"coalesce({first_number(CACHE_WRITE_KEYS)}, {lf_cache_write})"
    reasoning = f"coalesce({first_number(REASONING_KEYS)}, {_langfuse_usage('output_reasoning_tokens')})"
    client_cost = f"coalesce({_json_number(LANGFUSE_COST, 'total')}, {first_number(CLIENT_COST_KEYS)})"
    first_chunk = "arrayFirstIndex(n -> n IN (" + ", ".join(_q(n) for n in FIRST_CHUNK_EVENTS) + "), Events.Name)"
    completion_start = f"{A}['langfuse.observation.completion_start_time']"
    ttft_seconds = (
        f"coalesce({first_number(TTFT_SECONDS_KEYS)}, "
        f"if(first_chunk > 0, dateDiff('microsecond', Timestamp, Events.Timestamp[first_chunk]) / 1e6, NULL), "
        f"{first_number(TTFT_MS_KEYS)} / 1000, "
        f"if({completion_start} != '', "
        f"dateDiff('microsecond', Timestamp, parseDateTime64BestEffortOrNull({completion_start}, 6)) / 1e6, NULL))"
    )
    finish_raw = first_string(FINISH_KEYS)
    finish = (
        "arrayFilter(x -> x != '', if(startsWith(finish_raw, '['), JSONExtract(finish_raw, 'Array(String)'), "
        "[finish_raw]))"
    )
    exception_type = "arrayFirst(m -> m['exception.type'] != '', Events.Attributes)['exception.type']"
    deployment = (
        f"coalesce(nullIf({A}['keel.deployment_id'], ''), "
        f"nullIf(JSONExtractString({A}['hidden_params'], 'model_id'), ''), "
        f"if({A}['litellm.provider.model'] != '' AND {A}['server.address'] != '', "
        f"concat({A}['litellm.provider.model'], '@', {A}['server.address'], ':', {A}['server.port']), ''))"
    )
    conventions = ", ".join(f"if({cond}, {_q(name)}, '')" for name, cond in CONVENTIONS)
    truncated = " OR ".join(f"mapContains({A}, {_q(k)})" for k in TRUNCATION_KEYS)
    return [
        ("is_litellm", f"(ScopeName = 'litellm' OR SpanName = 'litellm_request' OR mapContains({A}, 'litellm.call_id') "
                       f"OR mapContains({A}, 'litellm.model_group'))"),
        ("raw_op", f"lower({first_string(OPERATION_KEYS)})"),
        ("RequestModel", request_model),
        ("raw_response_model", response_model),
        ("Operation", _operation_expr()),
        ("ProjectId", "ProjectId"),
        ("Timestamp", "Timestamp"),
        ("TraceId", "TraceId"),
        ("SpanId", "SpanId"),
        ("ParentSpanId", "ParentSpanId"),
        ("ServiceName", "ServiceName"),
        ("Environment", first_string(ENVIRONMENT_KEYS, R)),
        ("ResponseModel", "if(raw_response_model != '', raw_response_model, RequestModel)"),
        ("Route", f"coalesce(nullIf({first_string(ROUTE_KEYS)}, ''), nullIf(RequestModel, ''), ResponseModel)"),
        ("raw_provider", raw_provider),
        ("Provider", provider),
        ("SpanName", "SpanName"),
        ("StatusCode", "StatusCode"),
        ("IsError", f"toUInt8(StatusCode IN ('Error', 'STATUS_CODE_ERROR') OR {A}['error.type'] != '' "
                    f"OR {A}['langfuse.observation.level'] = 'ERROR')"),
        # util-genai 1.1b0 writes str(type(exc)) — "<class 'openai.InternalServerError'>": keep the class name.
        ("ErrorType", f"if(IsError = 1, replaceRegexpOne(coalesce(nullIf({A}['error.type'], ''), "
                      f"nullIf({exception_type}, ''), 'error'), {_q(CLASS_REPR)}, {_q(FIRST_GROUP)}), '')"),
        ("DurationMs", "Duration / 1e6"),
        ("first_chunk", first_chunk),
        ("ttft_s", ttft_seconds),
        ("TtftMs", "if(ttft_s IS NULL OR ttft_s < 0, NULL, ttft_s * 1000)"),
        ("Streamed", f"toUInt8(lower({first_string(STREAM_KEYS)}) IN ('true', '1') OR TtftMs IS NOT NULL "
                     "OR endsWith(raw_op, '.dostream'))"),
        ("raw_in", raw_in),
        ("cache_read", f"ifNull({cache_read}, 0)"),
        ("cache_write", f"ifNull({cache_write}, 0)"),
        ("InputTokens", "toUInt32(greatest(0, ifNull(raw_in, 0) "
                        "+ if(ifNull(raw_in, 0) < cache_read + cache_write, cache_read + cache_write, 0)))"),
        ("OutputTokens", f"toUInt32(greatest(0, ifNull({out}, 0)))"),
        ("CacheReadTokens", "toUInt32(greatest(0, cache_read))"),
        ("CacheWriteTokens", "toUInt32(greatest(0, cache_write))"),
        ("ReasoningTokens", f"toUInt32(greatest(0, ifNull({reasoning}, 0)))"),
        ("HasUsage", f"toUInt8(raw_in IS NOT NULL OR {out} IS NOT NULL)"),
        # A client cost of exactly 0 on a call with tokens means "the client had no price" (OpenLIT, LiteLLM).
        ("client_cost", f"if({client_cost} = 0 AND InputTokens + OutputTokens > 0, NULL, {client_cost})"),
        ("price_date", "toDate(Timestamp)"),
        ("price_key", _price_key_expr()),
        ("has_price", "price_key.2 != ''"),
        ("price", "dictGet('keel_price_dict', ('input_per_mtok', 'output_per_mtok', 'cached_input_per_mtok', "
                  "'cache_write_per_mtok', 'reasoning_per_mtok'), price_key, price_date)"),
        ("client_wins", "dictGetOrDefault('keel_project_dict', 'client_cost_wins', tuple(toString(ProjectId)), "
                        "toUInt8(1))"),
        ("CostSource", "multiIf(client_cost IS NOT NULL AND (client_wins = 1 OR NOT has_price), 'client', "
                       "has_price, 'price_table', '')"),
        ("uncached_in", "InputTokens - least(InputTokens, CacheReadTokens + CacheWriteTokens)"),
        ("cache_read_billed", "least(CacheReadTokens, InputTokens)"),
        ("table_in", "(uncached_in * price.1 + cache_read_billed * price.3 "
                     "+ (InputTokens - uncached_in - cache_read_billed) * price.4) / 1e6"),
        ("table_out", "((OutputTokens - least(ReasoningTokens, OutputTokens)) * price.2 "
                      "+ least(ReasoningTokens, OutputTokens) * price.5) / 1e6"),
        ("InputCost", f"multiIf(CostSource = 'price_table', table_in, CostSource = 'client', "
                      f"{first_number(CLIENT_INPUT_COST_KEYS)}, NULL)"),
        ("OutputCost", f"multiIf(CostSource = 'price_table', table_out, CostSource = 'client', "
                       f"{first_number(CLIENT_OUTPUT_COST_KEYS)}, NULL)"),
        ("TotalCost", "multiIf(CostSource = 'client', client_cost, CostSource = 'price_table', table_in + table_out, "
                      "NULL)"),
        ("Priced", "toUInt8(CostSource != '')"),
        ("PriceModel", "if(CostSource = 'price_table', price_key.2, '')"),
        ("finish_raw", finish_raw),
        ("FinishReasons", finish),
        ("CostCenter", f"coalesce(nullIf({first_string(COST_CENTER_KEYS)}, ''), {first_string(COST_CENTER_KEYS, R)})"),
        ("UserId", first_string(USER_KEYS)),
        ("SessionId", first_string(SESSION_KEYS)),
        ("GatewayDeploymentId", deployment),
        ("ScopeName", "ScopeName"),
        ("ScopeVersion", "ScopeVersion"),
        ("Conventions", f"arrayFilter(x -> x != '', [{conventions}])"),
        ("Truncated", f"toUInt8({truncated})"),
        ("InputContent", first_string(INPUT_CONTENT_KEYS)),
        ("OutputContent", first_string(OUTPUT_CONTENT_KEYS)),
    ]


def _price_key_expr() -> str:
    """(provider, model) key of the price that applies, or ('', '') when none does.

    Matching rule, first hit wins: the response model under its provider, then under any provider (rows synced
    with provider ''), then the same two for the model with its ``vendor/`` prefix and snapshot suffix (date,
    ``-0613``, ``@20241022``, ``:0``) removed, then the request model. Glob patterns in the price list are
    expanded to concrete names when prices are synced (:mod:`ingestion.prices`).
    """
    stripped = f"replaceRegexpOne(replaceRegexpOne(ResponseModel, '^.*/', ''), {_q(MODEL_SNAPSHOT_SUFFIX)}, '')"
    candidates = []
    for model in ("ResponseModel", stripped, "RequestModel"):
        candidates += [f"tuple(toString(Provider), {model})", f"tuple('', {model})"]
    parts = []
    for key in candidates:
        parts += [f"dictHas('keel_price_dict', {key}, price_date)", key]
    return f"multiIf({', '.join(parts)}, tuple('', ''))"


# Columns of ``llm_calls`` in table order (must match schema.llm_calls).
LLM_CALL_COLUMNS = [
    "ProjectId", "Timestamp", "TraceId", "SpanId", "ParentSpanId", "ServiceName", "Environment", "Route", "Provider",
    "RequestModel", "ResponseModel", "Operation", "SpanName", "StatusCode", "IsError", "ErrorType", "DurationMs",
    "TtftMs", "Streamed", "InputTokens", "OutputTokens", "CacheReadTokens", "CacheWriteTokens", "ReasoningTokens",
    "HasUsage", "InputCost", "OutputCost", "TotalCost", "Priced", "CostSource", "PriceModel", "FinishReasons",
    "CostCenter", "UserId", "SessionId", "GatewayDeploymentId", "ScopeName", "ScopeVersion", "Conventions",
    "Truncated", "InputContent", "OutputContent",
]


_SOURCE_COLUMNS = {"ProjectId", "Timestamp", "TraceId", "SpanId", "ParentSpanId", "ServiceName", "SpanName",
                   "StatusCode", "ScopeName", "ScopeVersion"}
# Computed before the inference filter (they decide whether a span is an LLM call at all).
_FILTER_COLUMNS = ("is_litellm", "raw_op", "RequestModel", "raw_response_model", "Operation")


def _layered(columns: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """``columns`` grouped into dependency layers: an expression refers only to source columns, to columns
    computed before ``columns`` and to aliases of earlier layers."""
    aliases = {a for a, _ in columns}
    depth: dict[str, int] = {}
    for alias, expr in columns:
        code = re.sub(r"'(?:[^'\\]|\\.)*'", "''", expr)  # ignore string literals
        refs = {name for name in re.findall(r"(?<![.\w`])([A-Za-z_]\w*)(?![\w`(])", code) if name in aliases}
        depth[alias] = 1 + max((depth[r] for r in refs), default=-1)
    layers: list[list[tuple[str, str]]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for alias, expr in columns:
        layers[depth[alias]].append((alias, expr))
    return layers


def _layers() -> tuple[list[list[tuple[str, str]]], list[list[tuple[str, str]]]]:
    """(layers deciding whether a span is an LLM call, layers of everything else).

    Why layers: the query analyzer inlines an alias by copying its expression wherever it is used, so one flat
    SELECT whose aliases build on aliases (cost → price → price_key → ResponseModel → …) analyses a tree many
    times its text — about 0.5 s of CPU, and a materialized view analyses its SELECT again for every insert.
    Selecting each layer from a subquery of the previous one refers to columns instead of copies.
    """
    columns = [(a, e) for a, e in _columns() if not (a == e and a in _SOURCE_COLUMNS)]
    first = [(a, e) for a, e in columns if a in _FILTER_COLUMNS]
    rest = [(a, e) for a, e in columns if a not in _FILTER_COLUMNS]
    return _layered(first), _layered(rest)


def normalising_select(source_table: str, where: str = "") -> str:
    """SELECT turning raw spans of ``source_table`` into ``llm_calls`` rows, in ``LLM_CALL_COLUMNS`` order.

    ``where`` adds a condition on the raw span columns (``reprice`` restricts to one tenant and time range).
    Non-inference spans are dropped as soon as ``Operation`` is known, before the remaining columns are computed.
    """
    inner_where = f"ProjectId != '' AND SpanName != 'raw_gen_ai_request'{f' AND ({where})' if where else ''}"
    inference = ", ".join(_q(o) for o in CANONICAL_INFERENCE)
    sql = f"SELECT * FROM {source_table} WHERE {inner_where}"
    deciding, rest = _layers()
    for i, layer in enumerate([*deciding, *rest]):
        if i == len(deciding):
            sql = f"SELECT * FROM ({sql}) WHERE Operation IN ({inference})"
        exprs = ",\n    ".join(f"{expr} AS {alias}" for alias, expr in layer)
        sql = f"SELECT *,\n    {exprs}\nFROM (\n{sql}\n)"
    return f"SELECT {', '.join(LLM_CALL_COLUMNS)} FROM (\n{sql}\n)"


def llm_calls_select(source_table: str) -> str:
    """SELECT used by the materialized view (kept for callers of the original name)."""
    return normalising_select(source_table)
