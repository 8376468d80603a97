"""An application in a subprocess: the real ``openai`` client, one real GenAI instrumentation, the real OTLP/HTTP
exporter pointed at Keel. Each library patches ``openai`` globally, so every library runs in its own process.

``python -m tests.ingestion.real_client LIBRARY`` with ``KEEL_OTLP_ENDPOINT``, ``KEEL_API_KEY`` and
``FAKE_OPENAI_BASE_URL`` set. It makes four calls (chat with route ``support-bot``, streamed chat, embeddings, a
failing chat) and prints one JSON line describing them.
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
from typing import Any

import openai
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

ROUTE: contextvars.ContextVar[str] = contextvars.ContextVar("keel_route", default="")
FAIL_MODEL = "fail-model"


class RouteTagger(SpanProcessor):
    """What an app does to name its route for Keel: set ``keel.route`` on the spans started inside the scope."""

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        if ROUTE.get():
            span.set_attribute("keel.route", ROUTE.get())

    def on_end(self, span: ReadableSpan) -> None:
        return


def instrument(library: str, provider: TracerProvider) -> None:
    if library == "openai_v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    elif library == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor  # type: ignore[no-redef]
    else:
        raise SystemExit(f"unknown library {library!r}")
    OpenAIInstrumentor().instrument(tracer_provider=provider)


def main(library: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": f"real-{library}",
                                                        "deployment.environment.name": "test"}))
    provider.add_span_processor(RouteTagger())
    exporter = OTLPSpanExporter(endpoint=os.environ["KEEL_OTLP_ENDPOINT"],
                                headers={"Authorization": f"Bearer {os.environ['KEEL_API_KEY']}"})
    provider.add_span_processor(BatchSpanProcessor(exporter))
    instrument(library, provider)

    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI_BASE_URL"], api_key="sk-test", max_retries=0)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say something nice"}]
    token = ROUTE.set("support-bot")
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    ROUTE.reset(token)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,  # type: ignore[arg-type]
                                            stream_options={"include_usage": True})
    streamed_text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    embedding = client.embeddings.create(model="text-embedding-3-small", input=["keel counts", "once"])
    error = ""
    try:
        client.chat.completions.create(model=FAIL_MODEL, messages=messages)  # type: ignore[arg-type]
    except openai.APIStatusError as exc:
        error = type(exc).__name__
    provider.force_flush()
    provider.shutdown()
    print(json.dumps({"plain": plain.choices[0].message.content, "streamed": streamed_text,
                      "embedding_dims": len(embedding.data[0].embedding), "error": error}))


if __name__ == "__main__":
    main(sys.argv[1])
