"""Table tests of the normalising view: real rows into ``otel_traces`` (Collector columns) → the ``llm_calls`` row.

Every convention of ``shared/reference/otel-genai.md`` has a case here, and every precedence rule of
``ingestion.normalise.PRECEDENCE`` has a case where two sources disagree.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from ingestion.normalise import PRECEDENCE, precedence_markdown
from tests.ingestion.span_rows import START, Span, calls, insert_spans, new_tenant, set_prices

# nt-model (openai): input 1, output 2, cached 0.5, cache write 1.25, reasoning 3 USD per 1M tokens.
PRICES = [
    ("openai", "nt-model", 1.0, 2.0, 0.5, 1.25, 3.0),
    ("anthropic", "nt-claude", 3.0, 15.0, 0.3, 3.75, 15.0),
    ("", "nt-any", 10.0, 10.0, 10.0, 10.0, 10.0),
    ("openai", "nt-embed", 0.1, 0.0, 0.1, 0.1, 0.0),
]
CONTRIB = "opentelemetry.instrumentation.openai_v2"
OPENLLMETRY = "opentelemetry.instrumentation.openai.v1"


def usage(inp: int, out: int) -> dict[str, int]:
    return {"gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out}


CASES: list[tuple[str, list[Span], list[dict[str, Any]]]] = [
    (
        "otel_genai_current",
        [Span(name="chat nt-model", scope=CONTRIB, attrs={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "nt-model",
            "gen_ai.response.model": "nt-model-2024-07-18", **usage(1000, 500),
            "gen_ai.usage.cache_read.input_tokens": 200, "gen_ai.usage.reasoning.output_tokens": 100,
            "gen_ai.response.finish_reasons": ["stop"], "gen_ai.response.time_to_first_chunk": 0.25,
            "gen_ai.request.stream": True})],
        # (800×1 + 200×0.5 + 400×2 + 100×3) / 1e6
        [{"Operation": "chat", "Provider": "openai", "RequestModel": "nt-model", "ResponseModel": "nt-model-2024-07-18",
          "Route": "nt-model", "InputTokens": 1000, "OutputTokens": 500, "CacheReadTokens": 200, "ReasoningTokens": 100,
          "TtftMs": 250.0, "Streamed": 1, "FinishReasons": ["stop"], "TotalCost": 0.002, "InputCost": 0.0009,
          "OutputCost": 0.0011, "CostSource": "price_table", "PriceModel": "nt-model", "Priced": 1, "HasUsage": 1,
          "Conventions": ["otel_genai"], "DurationMs": 1500.0, "IsError": 0}],
    ),
    (
        "otel_genai_deprecated_names",
        [Span(attrs={"gen_ai.system": "mistralai", "gen_ai.request.model": "mistral-x",
                     "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 5})],
        [{"Operation": "chat", "Provider": "mistral_ai", "InputTokens": 10, "OutputTokens": 5, "TotalCost": None,
          "Priced": 0, "Conventions": ["otel_genai_deprecated"]}],
    ),
    (
        "current_names_beat_deprecated",
        [Span(attrs={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.system": "vertex_ai",
                     "gen_ai.request.model": "nt-model", **usage(7, 3), "gen_ai.usage.prompt_tokens": 70,
                     "gen_ai.usage.completion_tokens": 30})],
        [{"Provider": "openai", "InputTokens": 7, "OutputTokens": 3,
          "Conventions": ["otel_genai", "otel_genai_deprecated"]}],
    ),
    (
        "deprecated_provider_renamed",
        [Span(attrs={"gen_ai.system": "vertex_ai", "gen_ai.operation.name": "generate_content",
                     "gen_ai.request.model": "gemini-x"})],
        [{"Provider": "gcp.vertex_ai", "Operation": "generate_content"}],
    ),
    (
        "openinference_llm",
        [Span(name="ChatCompletion", scope="openinference.instrumentation.openai", status="Ok",
              events=[(120.0, "First Token Stream Event", {})],
              attrs={"openinference.span.kind": "LLM", "llm.system": "openai", "llm.model_name": "nt-model-2024-07-18",
                     "llm.invocation_parameters": json.dumps({"model": "nt-model", "stream": True}),
                     "llm.token_count.prompt": 100, "llm.token_count.completion": 20, "llm.token_count.total": 120,
                     "llm.token_count.prompt_details.cache_read": 50,
                     "llm.token_count.completion_details.reasoning": 5, "llm.finish_reason": "stop",
                     "session.id": "s-1", "user.id": "u-1"})],
        [{"Operation": "chat", "Provider": "openai", "RequestModel": "nt-model", "ResponseModel": "nt-model-2024-07-18",
          "InputTokens": 100, "OutputTokens": 20, "CacheReadTokens": 50, "ReasoningTokens": 5, "TtftMs": 120.0,
          "Streamed": 1, "FinishReasons": ["stop"], "SessionId": "s-1", "UserId": "u-1",
          "Conventions": ["openinference"]}],
    ),
    (
        "openinference_embedding_and_agent",
        [Span(name="CreateEmbeddings", attrs={"openinference.span.kind": "EMBEDDING", "llm.system": "openai",
                                              "embedding.model_name": "nt-embed", "llm.token_count.prompt": 8}),
         Span(name="agent", attrs={"openinference.span.kind": "AGENT", "llm.model_name": "nt-model",
                                   "llm.token_count.prompt": 999})],
        [{"Operation": "embeddings", "RequestModel": "nt-embed", "InputTokens": 8, "TotalCost": pytest.approx(8e-7)}],
    ),
    (
        "openllmetry_legacy_indexed",
        [Span(name="openai.chat", scope=OPENLLMETRY, attrs={
            "gen_ai.system": "openai", "llm.request.type": "chat", "gen_ai.request.model": "nt-model",
            "gen_ai.response.model": "nt-model", "gen_ai.usage.prompt_tokens": 40,
            "gen_ai.usage.completion_tokens": 10, "llm.usage.total_tokens": 50,
            "gen_ai.usage.cache_read_input_tokens": 3, "llm.usage.reasoning_tokens": 4, "llm.is_streaming": "true",
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi",
            "gen_ai.completion.0.finish_reason": "stop", "llm.response.finish_reason": "stop"})],
        [{"Operation": "chat", "InputTokens": 40, "OutputTokens": 10, "CacheReadTokens": 3, "ReasoningTokens": 4,
          "Streamed": 1, "FinishReasons": ["stop"], "Conventions": ["otel_genai_deprecated", "openllmetry"]}],
    ),
    (
        "openllmetry_legacy_completion",
        [Span(name="openai.completion", scope=OPENLLMETRY, attrs={
            "gen_ai.system": "openai", "llm.request.type": "completion", "gen_ai.request.model": "nt-model",
            **usage(5, 5)})],
        [{"Operation": "text_completion"}],
    ),
    (
        "openllmetry_current",
        [Span(name="openai.chat", scope=OPENLLMETRY,
              events=[(80.0, "gen_ai.content.completion.chunk", {}), (90.0, "gen_ai.content.completion.chunk", {})],
              attrs={"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat",
                     "gen_ai.request.model": "nt-model", "gen_ai.response.model": "nt-model", **usage(12, 24),
                     "gen_ai.usage.cache_read.input_tokens": 0, "gen_ai.usage.reasoning_tokens": 7,
                     "gen_ai.usage.total_tokens": 36, "gen_ai.is_streaming": True,
                     "gen_ai.openai.api_base": "http://127.0.0.1/v1/"})],
        [{"TtftMs": 80.0, "Streamed": 1, "ReasoningTokens": 7, "Conventions": ["otel_genai", "openllmetry"]}],
    ),
    (
        "contrib_openai_v2_is_not_openllmetry",
        [Span(name="chat nt-model", scope=CONTRIB, attrs={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "nt-model",
            **usage(1, 1)})],
        [{"Conventions": ["otel_genai"], "Streamed": 0, "TtftMs": None}],
    ),
    (
        "openlit_client_cost_and_ttft",
        [Span(scope="openlit.instrumentation.openai", status="Ok", resource={"telemetry.sdk.name": "openlit"},
              attrs={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                     "gen_ai.request.model": "nt-model", **usage(100, 100), "gen_ai.usage.cost": 0.5,
                     "gen_ai.client.token.usage": 200, "gen_ai.server.time_to_first_token": 0.3,
                     "gen_ai.server.time_per_output_token": 0, "telemetry.sdk.name": "openlit",
                     "gen_ai.request.stream": True})],
        [{"TotalCost": 0.5, "CostSource": "client", "TtftMs": 300.0, "Conventions": ["otel_genai", "openlit"],
          "InputCost": None}],
    ),
    (
        "openlit_zero_cost_means_unknown",
        [Span(scope="openlit.instrumentation.openai", attrs={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "nt-model",
            **usage(1_000_000, 0), "gen_ai.usage.cost": 0})],
        [{"TotalCost": 1.0, "CostSource": "price_table"}],
    ),
    (
        "litellm_sdk_two_spans_count_once",
        [Span(name="litellm_request", scope="litellm", span_id="aaaaaaaaaaaaaaa1", attrs={
            "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "nt-model",
            "gen_ai.response.model": "nt-model-2024-07-18", **usage(10, 7), "gen_ai.usage.total_tokens": 17,
            "gen_ai.cost.total_cost": 0.01, "gen_ai.cost.input_cost": 0.004, "gen_ai.cost.output_cost": 0.006,
            "hidden_params": json.dumps({"model_id": "dep-1", "response_cost": 0.01}), "llm.request.type": "completion",
            "llm.is_streaming": "False", "gen_ai.response.finish_reasons": '["stop"]', "litellm.call_id": "c1"}),
         Span(name="raw_gen_ai_request", scope="litellm", parent_span_id="aaaaaaaaaaaaaaa1", attrs={
             "llm.openai.model": "nt-model", "llm.openai.usage": "{'prompt_tokens': 10}", "gen_ai.system": "openai",
             "gen_ai.request.model": "nt-model", **usage(10, 7)})],
        [{"SpanName": "litellm_request", "Operation": "chat", "TotalCost": 0.01, "InputCost": 0.004,
          "OutputCost": 0.006, "CostSource": "client", "GatewayDeploymentId": "dep-1", "Streamed": 0,
          "ResponseModel": "nt-model-2024-07-18", "Route": "nt-model", "FinishReasons": ["stop"],
          "Conventions": ["otel_genai", "otel_genai_deprecated", "litellm"]}],
    ),
    (
        "litellm_proxy_model_group_is_route_not_model",
        [Span(name="litellm_request", scope="litellm", attrs={
            "gen_ai.operation.name": "acompletion", "gen_ai.system": "openai", "gen_ai.request.model": "model-v1",
            "gen_ai.response.model": "chat-default", "litellm.model_group": "chat-default",
            "litellm.provider.model": "openai/nt-model", **usage(10, 7), "gen_ai.cost.total_cost": 2.4e-05,
            "hidden_params": json.dumps({"model_id": "chat-default-v1"}), "llm.request.type": "completion"})],
        [{"Operation": "chat", "Route": "chat-default", "RequestModel": "model-v1", "ResponseModel": "nt-model",
          "GatewayDeploymentId": "chat-default-v1", "TotalCost": 2.4e-05}],
    ),
    (
        "litellm_message_logging_off",
        [Span(name="litellm_request", scope="litellm", attrs={
            "gen_ai.system": "openai", "gen_ai.request.model": "nt-model", **usage(1_000_000, 0),
            "llm.request.type": "completion", "litellm.call_id": "c2"})],
        [{"Operation": "chat", "TotalCost": 1.0, "Conventions": ["otel_genai_deprecated", "litellm"]}],
    ),
    (
        "litellm_v2_deployment_from_provider_model",
        [Span(name="chat chat-default", scope="litellm", attrs={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.system": "openai",
            "gen_ai.request.model": "chat-default", "gen_ai.response.model": "nt-model", **usage(3, 4),
            "litellm.cost.total": 0.02, "litellm.cost.input": 0.01, "litellm.provider.model": "openai/nt-model",
            "server.address": "10.0.0.1", "server.port": 4000, "litellm.call_id": "c3"})],
        [{"Route": "chat-default", "ResponseModel": "nt-model", "GatewayDeploymentId": "openai/nt-model@10.0.0.1:4000",
          "TotalCost": 0.02, "InputCost": 0.01}],
    ),
    (
        "vercel_ai_outer_span_not_counted",
        [Span(name="ai.streamText", scope="ai", attrs={
            "ai.operationId": "ai.streamText", "ai.model.provider": "openai.chat", "ai.model.id": "nt-model",
            "ai.usage.inputTokens": 30, "ai.usage.outputTokens": 10}),
         Span(name="ai.streamText.doStream", scope="ai", start=START + dt.timedelta(milliseconds=5), attrs={
             "ai.operationId": "ai.streamText.doStream", "ai.model.provider": "openai.chat",
             "gen_ai.system": "openai.chat", "ai.model.id": "nt-model", "gen_ai.request.model": "nt-model",
             "ai.response.model": "nt-model-2024-07-18", "ai.usage.inputTokens": 30, "ai.usage.outputTokens": 10,
             "ai.usage.cachedInputTokens": 10, "ai.response.msToFirstChunk": 45.5, "ai.response.finishReason": "stop",
             "ai.telemetry.metadata.sessionId": "chat-9"})],
        [{"SpanName": "ai.streamText.doStream", "Operation": "chat", "Provider": "openai", "RequestModel": "nt-model",
          "ResponseModel": "nt-model-2024-07-18", "InputTokens": 30, "CacheReadTokens": 10, "TtftMs": 45.5,
          "Streamed": 1, "FinishReasons": ["stop"], "SessionId": "chat-9",
          "Conventions": ["otel_genai_deprecated", "vercel_ai"]}],
    ),
    (
        "vercel_ai_embed",
        [Span(name="ai.embed.doEmbed", scope="ai", attrs={
            "ai.operationId": "ai.embed.doEmbed", "ai.model.provider": "openai.embedding",
            "ai.model.id": "nt-embed", "ai.usage.tokens": 12})],
        [{"Operation": "embeddings", "Provider": "openai", "InputTokens": 12}],
    ),
    (
        "langfuse_generation",
        [Span(scope="langfuse-sdk", attrs={
            "langfuse.observation.type": "generation", "langfuse.observation.model.name": "nt-claude",
            "langfuse.observation.usage_details": json.dumps(
                {"input": 100, "output": 20, "cache_read_input_tokens": 50}),
            "langfuse.observation.cost_details": json.dumps({"total": 0.123}),
            "langfuse.observation.completion_start_time": (START + dt.timedelta(milliseconds=200)).isoformat() + "Z",
            "langfuse.observation.level": "ERROR", "langfuse.session.id": "lf-s"})],
        [{"Operation": "chat", "RequestModel": "nt-claude", "Provider": "", "InputTokens": 150, "OutputTokens": 20,
          "CacheReadTokens": 50, "TotalCost": 0.123, "CostSource": "client", "TtftMs": 200.0, "IsError": 1,
          "ErrorType": "error", "SessionId": "lf-s", "Conventions": ["langfuse"]}],
    ),
    (
        "langfuse_spans_agents_tools_not_counted",
        [Span(attrs={"langfuse.observation.type": "span", "langfuse.observation.model.name": "nt-model"}),
         Span(attrs={"langfuse.observation.type": "agent", "langfuse.observation.model.name": "nt-model"}),
         Span(attrs={"traceloop.span.kind": "workflow", "gen_ai.request.model": "nt-model"})],
        [],
    ),
    (
        "invoke_agent_repeats_usage_not_counted",
        [Span(name="invoke_agent planner", attrs={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "nt-model", **usage(500, 500)}),
         Span(name="execute_tool search", attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "s"})],
        [],
    ),
    (
        "keel_route_beats_gateway_group",
        [Span(attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "nt-model", "keel.route": "checkout",
                     "litellm.model_group": "chat-default"})],
        [{"Route": "checkout", "Conventions": ["otel_genai", "litellm", "keel"]}],
    ),
    (
        "anthropic_native_input_excludes_cache",
        [Span(attrs={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                     "gen_ai.request.model": "nt-claude", **usage(10, 100),
                     "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.cache_creation.input_tokens": 200})],
        # Input 10 + 1000 + 200; cost (10×3 + 1000×0.3 + 200×3.75 + 100×15) / 1e6
        [{"InputTokens": 1210, "CacheReadTokens": 1000, "CacheWriteTokens": 200, "TotalCost": 0.00258}],
    ),
    (
        "spec_input_includes_cache",
        [Span(attrs={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                     "gen_ai.request.model": "nt-claude", **usage(1210, 100),
                     "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.cache_creation.input_tokens": 200})],
        [{"InputTokens": 1210, "TotalCost": 0.00258}],
    ),
    (
        "error_type_precedence",
        [Span(name="chat a", status="Error", events=[(10.0, "exception", {"exception.type": "APITimeoutError"})],
              attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "nt-model"}),
         Span(name="chat b", status="Error", events=[(10.0, "exception", {"exception.type": "APITimeoutError"})],
              attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "nt-model",
                     "error.type": "RateLimitError"}),
         Span(name="chat c", attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "nt-model",
                                    "error.type": "500"}),
         Span(name="chat d", status="Error", attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                                                    "error.type": "<class 'openai.InternalServerError'>"})],
        [{"SpanName": "chat a", "IsError": 1, "ErrorType": "APITimeoutError", "HasUsage": 0},
         {"SpanName": "chat b", "IsError": 1, "ErrorType": "RateLimitError"},
         {"SpanName": "chat c", "IsError": 1, "ErrorType": "500"},
         {"SpanName": "chat d", "IsError": 1, "ErrorType": "InternalServerError"}],
    ),
    (
        "unpriced_model_is_null_not_zero",
        [Span(attrs={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                     "gen_ai.request.model": "never-priced-model", **usage(10, 10)})],
        [{"TotalCost": None, "InputCost": None, "Priced": 0, "CostSource": "", "PriceModel": ""}],
    ),
    (
        "provider_agnostic_price_and_prefixed_model",
        [Span(name="chat a", attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "nt-any",
                                    **usage(100_000, 0)}),
         Span(name="chat b", attrs={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                    "gen_ai.request.model": "openai/nt-model", **usage(1_000_000, 0)})],
        [{"SpanName": "chat a", "TotalCost": 1.0, "PriceModel": "nt-any"},
         {"SpanName": "chat b", "TotalCost": 1.0, "PriceModel": "nt-model"}],
    ),
    (
        "truncation_reported",
        [Span(attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "nt-model",
                     "keel.truncated.events": 120})],
        [{"Truncated": 1}],
    ),
    (
        "environment_cost_center_from_resource",
        [Span(resource={"deployment.environment.name": "prod", "keel.cost_center": "growth"},
              attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "nt-model"})],
        [{"Environment": "prod", "CostCenter": "growth"}],
    ),
]


@pytest.fixture(autouse=True)
def prices(ch) -> None:  # type: ignore[no-untyped-def]
    set_prices(ch, PRICES)


@pytest.mark.parametrize(("spans", "expected"), [pytest.param(s, e, id=i) for i, s, e in CASES])
def test_convention_maps_to_call_row(ch, spans: list[Span], expected: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    tenant = new_tenant()
    insert_spans(ch, tenant, spans)
    columns = sorted({"SpanName", *(k for row in expected for k in row)})
    rows = calls(ch, tenant, columns)
    assert len(rows) == len(expected), rows
    for got, want in zip(rows, expected, strict=True):
        for key, value in want.items():
            if isinstance(value, float):
                value = pytest.approx(value)
            assert got[key] == value, f"{key}: {got[key]!r} != {value!r}"


def test_raw_attribute_map_is_kept(ch) -> None:  # type: ignore[no-untyped-def]
    tenant = new_tenant()
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "nt-model", "vendor.custom": "x" * 5000}
    insert_spans(ch, tenant, [Span(attrs=attrs)])
    stored = ch.query("SELECT SpanAttributes FROM otel_traces WHERE ProjectId = {t:String}",
                      parameters={"t": tenant}).result_rows[0][0]
    assert stored == {k: str(v) for k, v in attrs.items()}
    assert len(calls(ch, tenant, ["SpanId"])) == 1


def test_precedence_table_covers_every_column_and_renders() -> None:
    names = {name for name, _ in PRECEDENCE}
    assert {"Operation", "Provider", "RequestModel", "ResponseModel", "Route", "InputTokens", "OutputTokens",
            "CacheReadTokens", "CacheWriteTokens", "ReasoningTokens", "TotalCost", "TtftMs"} <= names
    markdown = precedence_markdown()
    assert markdown.startswith("| column | sources, first present wins |\n|---|---|\n")
    assert markdown.count("\n") == len(PRECEDENCE) + 2
