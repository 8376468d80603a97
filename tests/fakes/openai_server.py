"""A local, deterministic OpenAI-compatible server for tests (stdlib only, runs in a thread on a free port).

Speaks what real clients and gateways need: ``POST /v1/chat/completions`` (JSON, or SSE streaming with
``stream_options.include_usage``), ``POST /v1/embeddings``, ``GET /v1/models``. Usage is a pure function of the
request (see :func:`prompt_tokens_for`), every response is recorded in :attr:`FakeOpenAIServer.served`, and
latency and failures can be injected::

    with FakeOpenAIServer(model_aliases={"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}) as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="test")
        fake.fail_next(1, status=500)          # the next request gets a 500
        fake.config.first_chunk_delay_s = 0.05 # TTFT of streamed calls

As a pytest fixture: ``from tests.fakes.openai_server import fake_openai`` in a test module or conftest. As a
process (for a gateway in another process): ``python -m tests.fakes.openai_server --port 0`` prints its base URL.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

REPLY_WORDS = ["Keel", "keeps", "every", "call", "counted", "once", "and", "priced", "right", "today", "again", "ok"]


@dataclass
class FakeOpenAIConfig:
    """Behaviour knobs; change them on ``server.config`` at any time (read per request)."""

    completion_tokens: int = 8          # words in each reply = completion tokens (one SSE chunk per word)
    cached_tokens: int = 0              # reported as prompt_tokens_details.cached_tokens
    reasoning_tokens: int = 0           # reported as completion_tokens_details.reasoning_tokens
    embedding_dimensions: int = 8
    latency_s: float = 0.0              # before any response byte
    first_chunk_delay_s: float = 0.0    # streaming: between the response headers and the first chunk
    chunk_delay_s: float = 0.0          # streaming: between chunks
    model_aliases: dict[str, str] = field(default_factory=dict)  # requested model → model named in responses
    fail_models: dict[str, int] = field(default_factory=dict)    # requested model → HTTP status to answer with
    system_fingerprint: str = "fp_fake"


@dataclass(frozen=True)
class Served:
    """One answered request: what a client should have seen."""

    path: str
    model: str
    response_model: str
    stream: bool
    status: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    headers: dict[str, str]


def prompt_tokens_for(payload: dict[str, Any]) -> int:
    """Deterministic prompt size: 3 + per message (4 + words of its text); embeddings: words of the input."""
    if "messages" in payload:
        total = 3
        for message in payload["messages"]:
            content = message.get("content") or ""
            if isinstance(content, list):
                content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            total += 4 + len(str(content).split())
        return total
    inputs = payload.get("input", "")
    inputs = inputs if isinstance(inputs, list) else [inputs]
    return sum(max(1, len(str(i).split())) for i in inputs)


class FakeOpenAIServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        self.config = FakeOpenAIConfig(**config)
        self.served: list[Served] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as an OpenAI client's ``base_url`` (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Answer the next ``count`` requests (any path) with ``status`` and an OpenAI-style error body."""
        with self._lock:
            self._failures.extend([status] * count)

    def _take_failure(self, model: str) -> int | None:
        with self._lock:
            if self._failures:
                return self._failures.pop(0)
        return self.config.fail_models.get(model)

    def _record(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                data = [{"id": m, "object": "model", "owned_by": "fake"} for m in ("gpt-4o-mini", "gpt-4o")]
                self._json(200, {"object": "list", "data": data})
            else:
                self._json(404, _error("not found", "invalid_request_error"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                payload = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._json(400, _error("body is not JSON", "invalid_request_error"))
                return
            path = self.path.split("?")[0].rstrip("/")
            cfg = server.config
            if cfg.latency_s:
                time.sleep(cfg.latency_s)
            model = str(payload.get("model", ""))
            headers = {k.lower(): v for k, v in self.headers.items()}
            failure = server._take_failure(model)
            if failure:
                server._record(Served(path, model, model, bool(payload.get("stream")), failure, 0, 0, 0, headers))
                self._json(failure, _error(f"injected failure {failure}", "server_error"))
                return
            response_model = cfg.model_aliases.get(model, model)
            if path.endswith("/chat/completions"):
                self._chat(payload, model, response_model, headers)
            elif path.endswith("/embeddings"):
                self._embeddings(payload, model, response_model, headers)
            else:
                self._json(404, _error(f"unknown path {path}", "invalid_request_error"))

        def _chat(self, payload: dict[str, Any], model: str, response_model: str, headers: dict[str, str]) -> None:
            cfg = server.config
            prompt = prompt_tokens_for(payload)
            words = [REPLY_WORDS[i % len(REPLY_WORDS)] for i in range(cfg.completion_tokens)]
            usage = {
                "prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words),
                "prompt_tokens_details": {"cached_tokens": min(cfg.cached_tokens, prompt), "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": cfg.reasoning_tokens, "audio_tokens": 0},
            }
            created = int(time.time())
            call_id = f"chatcmpl-fake{len(server.served)}"
            stream = bool(payload.get("stream"))
            server._record(Served("/v1/chat/completions", model, response_model, stream, 200, prompt, len(words),
                                  usage["prompt_tokens_details"]["cached_tokens"], headers))
            if not stream:
                self._json(200, {
                    "id": call_id, "object": "chat.completion", "created": created, "model": response_model,
                    "system_fingerprint": cfg.system_fingerprint, "service_tier": "default",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                                 "finish_reason": "stop", "logprobs": None}],
                    "usage": usage,
                })
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            base = {"id": call_id, "object": "chat.completion.chunk", "created": created, "model": response_model,
                    "system_fingerprint": cfg.system_fingerprint, "service_tier": "default"}
            if cfg.first_chunk_delay_s:
                time.sleep(cfg.first_chunk_delay_s)
            self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                              "finish_reason": None}]})
            for i, word in enumerate(words):
                if cfg.chunk_delay_s:
                    time.sleep(cfg.chunk_delay_s)
                text = word if i == 0 else " " + word
                self._event({**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
            self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if (payload.get("stream_options") or {}).get("include_usage"):
                self._event({**base, "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _embeddings(self, payload: dict[str, Any], model: str, response_model: str,
                        headers: dict[str, str]) -> None:
            cfg = server.config
            inputs = payload.get("input", "")
            inputs = inputs if isinstance(inputs, list) else [inputs]
            prompt = prompt_tokens_for(payload)
            server._record(Served("/v1/embeddings", model, response_model, False, 200, prompt, 0, 0, headers))
            data = [{"object": "embedding", "index": i,
                     "embedding": [round((i + 1) * 0.001 * (d + 1), 6) for d in range(cfg.embedding_dimensions)]}
                    for i in range(len(inputs))]
            self._json(200, {"object": "list", "data": data, "model": response_model,
                             "usage": {"prompt_tokens": prompt, "total_tokens": prompt}})

        def _event(self, body: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(body).encode() + b"\n\n")
            self.wfile.flush()

        def _json(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A started fake server with default behaviour; tweak ``fake_openai.config`` in the test."""
    with FakeOpenAIServer() as server:
        yield server


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI-compatible server until interrupted.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--completion-tokens", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeOpenAIServer(port=args.port, completion_tokens=args.completion_tokens, latency_s=args.latency)
    print(server.base_url, flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
