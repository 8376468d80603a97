"""A minimal OpenAI-compatible upstream (stdlib only) for offline gateway tests.

``POST /v1/chat/completions`` answers with a fixed reply whose ``model`` is the server's name and with ``usage`` (so
LiteLLM never needs a tokenizer download); ``fail = True`` makes it answer 500. ``hits`` counts requests.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, name: str) -> None:
        self.name = name
        self.fail = False
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": outer.name, "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                outer.hits += 1
                if outer.fail:
                    self._send(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
                    return
                self._send(200, {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
                    "model": outer.name,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"hello from {outer.name}"}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17},
                })

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"


@contextmanager
def fake_openai(name: str) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name)
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
