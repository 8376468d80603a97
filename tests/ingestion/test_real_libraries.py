"""Real clients end to end: the real ``openai`` client instrumented by real GenAI instrumentation libraries, each in
its own subprocess, exporting with the real OTLP/HTTP exporter to a live Keel (uvicorn in this process), against the
fake OpenAI-compatible server. Asserts the stored ``llm_calls`` rows: model, tokens, cost, TTFT, route, status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from django.core.management import call_command

from controlplane.apikeys import issue_key
from controlplane.models import Project
from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.harness import keel_server
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# gpt-4o-mini in ingestion/data/default_prices.json: USD per 1M tokens.
INPUT, CACHED, OUTPUT = 0.15, 0.075, 0.6
CACHED_TOKENS = 4
FIRST_CHUNK_DELAY_S = 0.05

# What each library reports (observed, and stated in shared/reference/otel-genai.md §7).
LIBRARIES = {
    "openai_v2": {"scope": "opentelemetry.util.genai.handler", "embed_scope": "opentelemetry.instrumentation.openai_v2",
                  "cache": False, "ttft": False, "conventions": ["otel_genai"]},
    "openllmetry": {"scope": "opentelemetry.instrumentation.openai.v1",
                    "embed_scope": "opentelemetry.instrumentation.openai.v1",
                    "cache": True, "ttft": True, "conventions": ["otel_genai", "openllmetry"]},
}
COLUMNS = ["ScopeName", "Operation", "Provider", "RequestModel", "ResponseModel", "Route", "InputTokens",
           "OutputTokens", "CacheReadTokens", "TotalCost", "Priced", "CostSource", "TtftMs", "Streamed", "IsError",
           "ErrorType", "StatusCode", "Conventions", "ServiceName", "Environment", "DurationMs"]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(model_aliases={"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}, fail_models={"fail-model": 500},
                          cached_tokens=CACHED_TOKENS, first_chunk_delay_s=FIRST_CHUNK_DELAY_S,
                          completion_tokens=6) as server:
        yield server


def stored_calls(ch: Any, tenant: str, expected: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = ch.query(f"SELECT {', '.join(COLUMNS)} FROM llm_calls FINAL WHERE ProjectId = {{t:String}} "
                        "ORDER BY Timestamp", parameters={"t": tenant}).result_rows
        if len(rows) >= expected or time.monotonic() > deadline:
            return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
        time.sleep(0.25)


@pytest.mark.parametrize("library", list(LIBRARIES))
def test_instrumented_openai_client_through_live_keel(library: str, transactional_db: None, ch: Any,
                                                      fake: FakeOpenAIServer) -> None:
    expect = LIBRARIES[library]
    project = Project.objects.create(slug=f"real-{library.replace('_', '-')}-{os.urandom(3).hex()}", name=library)
    key = issue_key(project, ["ingest"]).secret
    call_command("loaddefaultprices", stdout=open(os.devnull, "w"))  # noqa: SIM115
    served_before = len(fake.served)

    with keel_server() as base_url:
        env = {**os.environ, "KEEL_OTLP_ENDPOINT": f"{base_url}/v1/traces", "KEEL_API_KEY": key,
               "FAKE_OPENAI_BASE_URL": fake.base_url, "PYTHONPATH": str(ROOT),
               "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}
        env = {k: v for k, v in env.items() if not k.startswith(("DJANGO_", "KEEL_CLICKHOUSE"))}
        app = subprocess.run([sys.executable, "-m", "tests.ingestion.real_client", library], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
        assert app.returncode == 0, app.stderr[-3000:]
        assert "Failed to export" not in app.stderr, app.stderr[-3000:]
        outcome = json.loads(app.stdout.strip().splitlines()[-1])
        rows = stored_calls(ch, project.tenant_id, expected=4)

    assert outcome["plain"] and outcome["streamed"] and outcome["error"] == "InternalServerError"
    served = fake.served[served_before:]
    assert [(s.path, s.stream, s.status) for s in served] == [
        ("/v1/chat/completions", False, 200), ("/v1/chat/completions", True, 200), ("/v1/embeddings", False, 200),
        ("/v1/chat/completions", False, 500)]
    assert len(rows) == 4, rows
    plain, streamed, embedding, failed = rows

    for row, call in ((plain, served[0]), (streamed, served[1])):
        cache = CACHED_TOKENS if expect["cache"] else 0
        assert (row["Operation"], row["Provider"], row["RequestModel"], row["ResponseModel"]) == (
            "chat", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
        assert (row["InputTokens"], row["OutputTokens"], row["CacheReadTokens"]) == (
            call.prompt_tokens, call.completion_tokens, cache)
        cost = ((call.prompt_tokens - cache) * INPUT + cache * CACHED + call.completion_tokens * OUTPUT) / 1e6
        assert (row["TotalCost"], row["Priced"], row["CostSource"]) == (pytest.approx(cost), 1, "price_table")
        assert (row["IsError"], row["ErrorType"]) == (0, "")
        tagged = ["keel"] if row is plain else []  # keel.route marks the span as using Keel's own key
        assert row["ScopeName"] == expect["scope"] and row["Conventions"] == expect["conventions"] + tagged
        assert (row["ServiceName"], row["Environment"]) == (f"real-{library}", "test")
        assert row["DurationMs"] > 0
    assert plain["Route"] == "support-bot"  # keel.route set by the app
    assert streamed["Route"] == "gpt-4o-mini"  # no route: the requested model
    assert plain["TtftMs"] is None
    if expect["ttft"]:
        assert streamed["Streamed"] == 1
        assert FIRST_CHUNK_DELAY_S * 1000 <= streamed["TtftMs"] < streamed["DurationMs"]
    else:
        assert streamed["TtftMs"] is None  # this library reports neither a stream flag nor a first-chunk time

    assert (embedding["Operation"], embedding["RequestModel"], embedding["InputTokens"], embedding["OutputTokens"]) == (
        "embeddings", "text-embedding-3-small", served[2].prompt_tokens, 0)
    assert embedding["TotalCost"] == pytest.approx(served[2].prompt_tokens * 0.02 / 1e6)
    assert embedding["ScopeName"] == expect["embed_scope"]

    assert (failed["RequestModel"], failed["IsError"], failed["StatusCode"]) == ("fail-model", 1, "Error")
    assert failed["ErrorType"] == "InternalServerError"
    assert (failed["InputTokens"], failed["TotalCost"], failed["Priced"]) == (0, None, 0)
