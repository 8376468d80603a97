"""Span-event and attribute-size caps applied by the landing view, reported on the span and in ``llm_calls``."""

from __future__ import annotations

import pytest

from django.test import Client

from controlplane.apikeys import issue_key
from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.landing import (
    MAX_ATTRIBUTE_BYTES,
    MAX_SPAN_EVENTS,
    TRUNCATED_ATTRIBUTES_KEY,
    TRUNCATED_EVENTS_KEY,
)
from tests.ingestion.test_otlp_support import genai_request

PB = "application/x-protobuf"


def _store(project, req) -> None:  # type: ignore[no-untyped-def]
    key = issue_key(project, ["ingest"]).secret
    response = Client().generic("POST", "/v1/traces", req.SerializeToString(), content_type=PB,
                                HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200, response.content


def _span(tenant: str, span_id: str) -> tuple:  # type: ignore[type-arg]
    return get_client().query(
        "SELECT SpanAttributes, Events.Name, Events.Attributes, length(Events.Timestamp) FROM otel_traces "
        "WHERE ProjectId = {p:String} AND SpanId = {s:String}",
        parameters={"p": tenant, "s": span_id},
    ).result_rows[0]


def _call(tenant: str, span_id: str) -> tuple:  # type: ignore[type-arg]
    return get_client().query(
        "SELECT Truncated, TtftMs, ErrorType FROM llm_calls WHERE ProjectId = {p:String} AND SpanId = {s:String}",
        parameters={"p": tenant, "s": span_id},
    ).result_rows[0]


@pytest.mark.django_db
def test_streamed_span_keeps_first_events_and_the_exception_and_reports_how_many_were_dropped(project) -> None:
    req = genai_request(2)
    streamed, small = req.resource_spans[0].scope_spans[0].spans
    start = streamed.start_time_unix_nano
    for i in range(MAX_SPAN_EVENTS + 72):  # one event per chunk, the first at +150 ms
        streamed.events.add(name="gen_ai.content.completion.chunk", time_unix_nano=start + 150_000_000 + i * 1000)
    failure = streamed.events.add(name="exception", time_unix_nano=start + 900_000_000)
    failure.attributes.add(key="exception.type").value.string_value = "openai.APITimeoutError"
    streamed.status.code = 2
    small.events.add(name="gen_ai.content.completion.chunk", time_unix_nano=small.start_time_unix_nano + 1000)
    _store(project, req)

    attributes, names, _event_attributes, count = _span(project.tenant_id, streamed.span_id.hex())
    assert count == MAX_SPAN_EVENTS + 1
    assert names[:MAX_SPAN_EVENTS] == ["gen_ai.content.completion.chunk"] * MAX_SPAN_EVENTS
    assert names[-1] == "exception"
    assert attributes[TRUNCATED_EVENTS_KEY] == "72"
    assert TRUNCATED_ATTRIBUTES_KEY not in attributes
    truncated, ttft_ms, error_type = _call(project.tenant_id, streamed.span_id.hex())
    assert truncated == 1 and ttft_ms == pytest.approx(150.0) and error_type == "openai.APITimeoutError"

    attributes, names, _event_attributes, count = _span(project.tenant_id, small.span_id.hex())
    assert count == 1 and TRUNCATED_EVENTS_KEY not in attributes and TRUNCATED_ATTRIBUTES_KEY not in attributes
    assert _call(project.tenant_id, small.span_id.hex())[0] == 0


@pytest.mark.django_db
def test_oversized_attribute_values_are_cut_at_a_utf8_boundary_and_still_redacted(project) -> None:
    req = genai_request(1, content="mail bob@example.com " + "é" * MAX_ATTRIBUTE_BYTES)  # 2 bytes per é
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="app.blob").value.bytes_value = b"\x00" * (MAX_ATTRIBUTE_BYTES + 1)
    listed = span.attributes.add(key="app.list").value.array_value.values
    listed.add().string_value = "x" * (MAX_ATTRIBUTE_BYTES + 1)
    span.attributes.add(key="app.small").value.string_value = "y" * (MAX_ATTRIBUTE_BYTES - 1)
    event = span.events.add(name="gen_ai.choice", time_unix_nano=span.start_time_unix_nano + 10)
    event.attributes.add(key="message").value.string_value = "z" * (MAX_ATTRIBUTE_BYTES * 2)
    _store(project, req)

    attributes, _names, event_attributes, _count = _span(project.tenant_id, span.span_id.hex())
    content = attributes["gen_ai.input.messages"]
    assert content.startswith("mail [EMAIL] éé")
    assert len(content.encode()) <= MAX_ATTRIBUTE_BYTES  # placeholder shorter than the address it replaced
    content.encode().decode("utf-8")  # valid UTF-8: the cut did not split a character
    assert "\ufffd" not in content[:-1]
    assert attributes["app.blob"] == "A" * MAX_ATTRIBUTE_BYTES  # base64, cut
    assert len(attributes["app.list"]) == MAX_ATTRIBUTE_BYTES
    assert attributes["app.small"] == "y" * (MAX_ATTRIBUTE_BYTES - 1)
    assert len(event_attributes[0]["message"]) == MAX_ATTRIBUTE_BYTES
    # the content value, the bytes, the list and the event's message were cut
    assert attributes[TRUNCATED_ATTRIBUTES_KEY] == "4"
    assert TRUNCATED_EVENTS_KEY not in attributes
    assert _call(project.tenant_id, span.span_id.hex())[0] == 1
