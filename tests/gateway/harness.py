"""Start the real pieces for gateway tests and the remediation benchmark: Keel (uvicorn, in a thread of this
process so it shares the embedded chDB and the test database) and a LiteLLM proxy subprocess with the Keel plugin.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "deploy" / "litellm" / "keel_litellm.py"
MASTER_KEY = "sk-keel-test-master"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def litellm_executable() -> str | None:
    candidate = Path(sys.executable).parent / "litellm"
    return str(candidate) if candidate.exists() else shutil.which("litellm")


@contextmanager
def keel_server() -> Iterator[str]:
    """Serve ``controlplane.asgi.application`` with uvicorn in a daemon thread; yields the base URL."""
    import uvicorn

    from controlplane.asgi import application

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("Keel (uvicorn) did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class LiteLLM:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def chat(self, model: str = "chat-default") -> requests.Response:
        return requests.post(f"{self.url}/v1/chat/completions", timeout=30,
                             headers={"Authorization": f"Bearer {MASTER_KEY}"},
                             json={"model": model, "messages": [{"role": "user", "content": "hi"}]})

    def served_by(self) -> str:
        response = self.chat()
        response.raise_for_status()
        return response.headers.get("x-litellm-model-id", "")


def write_config(directory: Path, upstreams: dict[str, str], *, otel: bool) -> Path:
    """``upstreams``: deployment id → OpenAI-compatible base URL, all in the ``chat-default`` group."""
    lines = ["model_list:"]
    for deployment_id, api_base in upstreams.items():
        lines += [
            "  - model_name: chat-default",
            "    litellm_params:",
            f"      model: openai/{deployment_id}",
            f"      api_base: {api_base}",
            "      api_key: fake",
            "      input_cost_per_token: 0.000001",
            "      output_cost_per_token: 0.000002",
            f"    model_info: {{id: {deployment_id}}}",
        ]
    callbacks = '["otel", "keel_litellm.keel_router"]' if otel else '["keel_litellm.keel_router"]'
    lines += [
        "router_settings: {routing_strategy: simple-shuffle, num_retries: 0}",
        f"litellm_settings: {{callbacks: {callbacks}}}",
        f"general_settings: {{master_key: {MASTER_KEY}}}",
    ]
    shutil.copy(PLUGIN, directory / "keel_litellm.py")
    config = directory / "config.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


@contextmanager
def litellm_proxy(directory: Path, upstreams: dict[str, str], *, keel_url: str, read_key: str,
                  ingest_key: str | None = None, startup_timeout: float = 90) -> Iterator[LiteLLM]:
    executable = litellm_executable()
    if executable is None:
        raise RuntimeError("litellm is not installed (pip install -e '.[dev]')")
    config = write_config(directory, upstreams, otel=ingest_key is not None)
    port = free_port()
    # Keel's own settings (DATABASE_URL on the PostgreSQL pass!) must not leak into LiteLLM: it would try to use
    # that database through Prisma. Pull mode needs no LiteLLM database.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DJANGO_", "KEEL_", "LITELLM_"))
           and k not in {"DATABASE_URL", "DIRECT_URL", "STORE_MODEL_IN_DB", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update({
        "LITELLM_LOCAL_MODEL_COST_MAP": "True", "KEEL_URL": keel_url, "KEEL_API_KEY": read_key,
        "KEEL_POLL_WAIT": "20", "PYTHONPATH": str(directory), "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost", "DISABLE_SCHEMA_UPDATE": "True",
    })
    if ingest_key is not None:
        env.update({"OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": f"{keel_url}/v1/traces",
                    "OTEL_HEADERS": f"Authorization=Bearer {ingest_key}", "OTEL_SERVICE_NAME": "litellm-proxy",
                    "OTEL_BSP_SCHEDULE_DELAY": "500"})
    log = directory / "litellm.log"
    with log.open("wb") as out:
        process = subprocess.Popen([executable, "--config", str(config), "--port", str(port), "--host", "127.0.0.1"],
                                   cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT)
    proxy = LiteLLM(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"litellm exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{proxy.url}/health/liveliness", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"litellm did not become live:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proxy
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_until_served_by(proxy: LiteLLM, deployment_id: str, timeout: float) -> tuple[float, list[str]]:
    """Seconds until a request is served by ``deployment_id``, and who served every request sent meanwhile."""
    started = time.monotonic()
    seen: list[str] = []
    while time.monotonic() - started < timeout:
        seen.append(proxy.served_by())
        if seen[-1] == deployment_id:
            return time.monotonic() - started, seen
        time.sleep(0.1)
    raise AssertionError(f"not served by {deployment_id} within {timeout} s (served by {seen})")
