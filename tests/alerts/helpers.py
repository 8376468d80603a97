"""A real local HTTP receiver for webhook / Slack / PagerDuty tests, and a way to open an alert without rollups."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from anomaly import alerts
from controlplane.models import Project

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # path -> status codes to answer, in order (200 once exhausted)
    script: dict[str, list[int]] = field(default_factory=dict)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


def serve() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
            codes = receiver.script.get(self.path) or []
            code = codes.pop(0) if codes else 200
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}' if code < 300 else b'{"error": "boom"}')

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def observation(project: Project, *, route: str = "support", detector: str = "latency_p95", score: float = 2.0,
                started: dt.datetime = T0, **extra: Any) -> alerts.Observation:
    return alerts.Observation(
        project=project,
        detector=detector,
        series_key={"route": route, "model_version": "gpt-a", "grouping": "route_version"},
        title=f"latency p95 anomaly on route={route}",
        score=score,
        episode_started_at=started,
        metric="latency",
        method="robust_baseline",
        window_start=started,
        window_end=started + dt.timedelta(minutes=3),
        observed=2400.0,
        expected=850.0,
        lower=700.0,
        upper=1000.0,
        points=[[int(started.timestamp()), 2400.0, 850.0, 700.0, 1000.0]],
        **extra,
    )
