"""`manage.py serve` end to end, as a real process: ready, ingest, metrics, exclusive store, clean shutdown.

One server (``--no-demo``, its own var dir, a free port) is shared by the module's tests; the shutdown test runs
last and checks that what was acknowledged is still there after the process exited.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support import ROOT

pytestmark = pytest.mark.slow


def _env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "DJANGO_")) and k not in {
        "DATABASE_URL", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "CELERY_BROKER_URL"}}
    env["KEEL_VAR_DIR"] = str(var)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(var: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=_env(var), capture_output=True,
                          text=True, timeout=timeout, check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    var: Path
    url: str
    key: str
    tenant: str
    process: subprocess.Popen[str]
    log: Path
    simulated: int = 0  # spans the simulate command reported as accepted

    def output(self) -> str:
        return self.log.read_text()


def _start(var: Path, port: int, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-demo", "--port", str(port)], cwd=ROOT, env=_env(var),
        stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
    )


def _wait_ready(url: str, process: subprocess.Popen[str], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"serve was not ready within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    var = tmp_path_factory.mktemp("serve-var")
    for step in (("migrate", "-v0"), ("migrate_clickhouse",)):
        done = _run(var, *step)
        assert done.returncode == 0, done.stderr
    created = _run(var, "createapikey", "--project", "e2e")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    tenant = _run(var, "shell", "-c", "from controlplane.models import Project; "
                  "print(Project.objects.get(slug='e2e').tenant_id)").stdout.strip().splitlines()[-1]
    port = _free_port()
    log = var / "serve.log"
    process = _start(var, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield Served(var, url, key, tenant, process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _export_one_span(url: str, key: str, name: str) -> bool:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {key}"})
    results: list[SpanExportResult] = []
    original = exporter.export
    exporter.export = lambda spans: results.append(original(spans)) or results[-1]  # type: ignore[method-assign]
    provider = TracerProvider(resource=Resource.create({"service.name": "e2e-app"}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("e2e").start_as_current_span(name, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3, "keel.route": "e2e-route",
    }):
        pass
    provider.shutdown()
    return results == [SpanExportResult.SUCCESS]


STORED_QUERY = """
import json
from ingestion.clickhouse.client import get_client
c = get_client()
p = {"t": "TENANT", "name": "chat e2e-before-restart", "app": "e2e-app"}
stored = c.query("SELECT count() FROM otel_traces WHERE ProjectId = {t:String} AND SpanName = {name:String}",
                 parameters=p).result_rows[0][0]
calls = c.query("SELECT uniqExact(ServiceName), uniqExact(Route), uniqExact(Provider), countIf(TtftMs IS NOT NULL), "
                "count() "
                "FROM llm_calls WHERE ProjectId = {t:String} AND ServiceName != {app:String}",
                parameters=p).result_rows[0]
print(json.dumps([stored, list(calls)]))
"""


def test_banner_says_where_and_how_to_send(served: Served) -> None:
    out = served.output()
    assert f"Keel is running at {served.url}/" in out
    assert "Log in:        admin / " in out
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT={served.url}" in out.splitlines()
    assert "No demo project" in out
    password = (served.var / "admin_password").read_text().strip()
    assert f"admin / {password}" in out


def test_ready_and_metrics(served: Served) -> None:
    ready = requests.get(f"{served.url}/readyz", timeout=10).json()
    assert ready["status"] == "ready" and ready["checks"]["broker"]["ok"]
    assert _export_one_span(served.url, served.key, "chat e2e-before-restart")
    text = requests.get(f"{served.url}/metrics", timeout=10).text
    for name in ("keel_spans_received_total", "keel_spans_rejected_total", "keel_insert_batch_rows_bucket",
                 "keel_task_runs_total", "keel_websocket_clients", "process_resident_memory_bytes"):
        assert name in text, name


def test_second_serve_on_the_same_store_names_the_pid(served: Served) -> None:
    port = served.url.rsplit(":", 1)[1]  # the same command again, as a second `make run` would be
    second = _run(served.var, "serve", "--no-demo", "--port", port, timeout=120)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert "is in use by another Keel process" in lines[0] and f"PID {served.process.pid}" in lines[0]


def test_simulate_with_a_wrong_key_or_url_is_one_line(served: Served) -> None:
    bad_key = _run(served.var, "simulate", "--url", served.url, "--key", "keel_nope_nope", "--duration", "1")
    assert bad_key.returncode == 1 and bad_key.stdout == ""
    assert bad_key.stderr.strip().splitlines() == [
        f"CommandError: Keel at {served.url} rejected the ingest key (HTTP 401): check --key"
    ]
    dead = _run(served.var, "simulate", "--url", f"http://127.0.0.1:{_free_port()}", "--key", served.key)
    assert dead.returncode == 1
    assert len(dead.stderr.strip().splitlines()) == 1 and "cannot reach Keel" in dead.stderr
    not_keel = _run(served.var, "simulate", "--url", f"{served.url}/nowhere", "--key", served.key)
    assert not_keel.returncode == 1
    assert len(not_keel.stderr.strip().splitlines()) == 1 and "HTTP 404" in not_keel.stderr


def test_simulate_sends_real_otlp(served: Served) -> None:
    sent = _run(served.var, "simulate", "--url", served.url, "--key", served.key, "--rate", "40", "--duration", "6",
                "--seed", "3")
    assert sent.returncode == 0, sent.stderr
    assert "live spans" in sent.stdout
    live = int(sent.stdout.strip().splitlines()[-1].split(" and ")[1].split()[0])
    assert live > 0
    served.simulated = live


def test_sigint_stops_cleanly_and_data_survives(served: Served) -> None:
    served.process.send_signal(signal.SIGINT)
    code = served.process.wait(timeout=120)
    out = served.output()
    assert code == 0, out[-3000:]
    assert "Keel stopped." in out
    assert "Traceback" not in out
    after = _run(served.var, "shell", "-c", STORED_QUERY.replace("TENANT", served.tenant))
    assert after.returncode == 0, after.stderr
    stored, (services, routes, providers, with_ttft, calls) = json.loads(after.stdout.strip().splitlines()[-1])
    assert stored == 1
    assert calls == served.simulated, "every span the simulator was told was accepted is stored, once"
    assert services == 3 and routes == 3 and providers >= 2 and with_ttft > 0


def test_port_in_use_is_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(tmp_path, "serve", "--no-demo", "--port", str(port), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"keel: Port {port} on 127.0.0.1 is not available (Address already in use): stop whatever uses it or pick "
        "another port (make run PORT=8001, or manage.py serve --port 8001)."
    ]


def test_with_a_redis_broker_serve_is_web_only(tmp_path: Path, redis_url: str) -> None:
    """Production shape: the broker is Redis, so workers/beat run elsewhere and serve runs no Celery threads."""
    port = _free_port()
    log = tmp_path / "serve.log"
    env = _env(tmp_path) | {"CELERY_BROKER_URL": redis_url, "KEEL_REDIS_URL": redis_url}
    process = subprocess.Popen([sys.executable, "manage.py", "serve", "--no-demo", "--port", str(port)], cwd=ROOT,
                               env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process, log)
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()
        assert ready["checks"]["broker"]["ok"]
        assert "web only; run `celery -A controlplane worker`" in log.read_text()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, log.read_text()[-2000:]
