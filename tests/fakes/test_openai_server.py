"""The fake OpenAI-compatible server behaves like the API for the real ``openai`` client."""

from __future__ import annotations

import time

import openai
import pytest

from tests.fakes.openai_server import FakeOpenAIServer, prompt_tokens_for

MESSAGES = [{"role": "user", "content": "one two three"}]


def client(server: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def test_chat_json_and_stream_report_the_same_deterministic_usage(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.config.completion_tokens = 5
    fake_openai.config.cached_tokens = 2
    fake_openai.config.model_aliases = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
    plain = client(fake_openai).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert plain.model == "gpt-4o-mini-2024-07-18"
    assert plain.usage is not None and (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (
        prompt_tokens_for({"messages": MESSAGES}), 5)
    assert plain.usage.prompt_tokens_details is not None and plain.usage.prompt_tokens_details.cached_tokens == 2
    chunks = list(client(fake_openai).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == plain.usage.total_tokens
    assert [s.stream for s in fake_openai.served] == [False, True]


def test_stream_without_include_usage_has_no_usage_chunk(fake_openai: FakeOpenAIServer) -> None:
    chunks = list(client(fake_openai).chat.completions.create(model="m", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert all(c.usage is None for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"


def test_embeddings(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.config.embedding_dimensions = 4
    result = client(fake_openai).embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert [len(d.embedding) for d in result.data] == [4, 4] and result.usage.prompt_tokens == 3


def test_failure_injection_and_latency(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.fail_next(1, status=503)
    with pytest.raises(openai.InternalServerError):
        client(fake_openai).chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    fake_openai.config.fail_models = {"broken": 429}
    with pytest.raises(openai.RateLimitError):
        client(fake_openai).chat.completions.create(model="broken", messages=MESSAGES)  # type: ignore[arg-type]
    fake_openai.config.latency_s = 0.2
    started = time.monotonic()
    client(fake_openai).chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.2
    assert [s.status for s in fake_openai.served] == [503, 429, 200]
