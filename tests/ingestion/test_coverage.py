"""Coverage per instrumentation source: conventions recognised, calls lacking model / usage / price."""

from __future__ import annotations

import datetime as dt

import pytest

from ingestion.coverage import CoverageQuery
from tests.ingestion.span_rows import START, Span, insert_spans, new_tenant, set_prices

CONTRIB = "opentelemetry.instrumentation.openai_v2"
OPENLLMETRY = "opentelemetry.instrumentation.openai.v1"


def window() -> tuple[dt.datetime, dt.datetime]:
    return START - dt.timedelta(hours=1), START + dt.timedelta(hours=1)


def test_coverage_per_scope_and_service(ch) -> None:  # type: ignore[no-untyped-def]
    set_prices(ch, [("openai", "cov-model", 1.0, 1.0, 1.0, 1.0, 1.0)])
    tenant = new_tenant()
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
    insert_spans(ch, tenant, [
        Span(scope=CONTRIB, scope_version="2.4b0", service="api", attrs={
            **chat, "gen_ai.request.model": "cov-model", "gen_ai.usage.input_tokens": 5,
            "gen_ai.usage.output_tokens": 1}),
        Span(scope=CONTRIB, scope_version="2.4b0", service="api", status="Error", attrs={
            **chat, "gen_ai.request.model": "cov-model", "error.type": "APIError"}),  # failed: no usage
        Span(scope=CONTRIB, scope_version="2.4b0", service="api", attrs={
            **chat, "gen_ai.request.model": "mystery-model", "gen_ai.usage.input_tokens": 5}),  # unpriced
        Span(scope=OPENLLMETRY, scope_version="0.62.4", service="api",
             events=[(50.0, "gen_ai.content.completion.chunk", {})], attrs={
                 **chat, "gen_ai.request.model": "cov-model", "gen_ai.is_streaming": True,
                 "gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 2, "keel.truncated.events": 3}),
        Span(scope="custom", service="batch", attrs={"gen_ai.operation.name": "chat"}),  # no model at all
        Span(scope="custom", service="batch", attrs={"gen_ai.operation.name": "invoke_agent"}),  # not a call
    ])
    rows = {(c.service, c.scope_name, c.scope_version): c for c in CoverageQuery(tenant, *window()).fetch()}
    assert set(rows) == {("api", CONTRIB, "2.4b0"), ("api", OPENLLMETRY, "0.62.4"), ("batch", "custom", "1.0")}

    contrib = rows[("api", CONTRIB, "2.4b0")]
    counts = (contrib.calls, contrib.missing_usage, contrib.unpriced, contrib.table_cost, contrib.errors)
    assert counts == (3, 1, 1, 2, 1)
    assert contrib.conventions == {"otel_genai": 3}
    assert contrib.unpriced_models == {"mystery-model": 1}
    assert contrib.operations == {"chat": 3}

    openllmetry = rows[("api", OPENLLMETRY, "0.62.4")]
    assert openllmetry.conventions == {"openllmetry": 1, "otel_genai": 1}
    assert (openllmetry.streamed, openllmetry.with_ttft, openllmetry.truncated, openllmetry.unpriced) == (1, 1, 1, 0)

    custom = rows[("batch", "custom", "1.0")]
    assert (custom.calls, custom.missing_model, custom.missing_provider, custom.missing_usage) == (1, 1, 1, 1)


def test_coverage_is_tenant_scoped(ch) -> None:  # type: ignore[no-untyped-def]
    mine, other = new_tenant(), new_tenant()
    insert_spans(ch, other, [Span(attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})])
    assert CoverageQuery(mine, *window()).fetch() == []
    assert len(CoverageQuery(other, *window()).fetch()) == 1
    with pytest.raises(ValueError, match="tenant"):
        CoverageQuery("", *window())
