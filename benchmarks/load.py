"""Sustained load (``python -m benchmarks.run load``, ``make load``): nothing lost, latency and memory under load.

A real ``manage.py serve --no-demo`` process (its own var dir, embedded ClickHouse, in-process Celery worker and
beat, so the detector sweep runs every minute as it does in production) receives OTLP/HTTP protobuf at a target
rate for N minutes, while reader threads load the read API (calls, usage) and the dashboard pages. The client
behaves like the OTel exporter: a non-200 answer or a dropped connection is retried with the same body after
Retry-After. Afterwards the server is stopped (SIGINT, graceful drain) and the store opened by another process
(chDB is single-process) to compare the set of (TraceId, SpanId) acknowledged with the set stored: they must be
identical. Reported: spans sent/stored, p50/p99 ingest latency, RSS samples of the server, read latencies, sweeps.

Environment: ``LOAD_MINUTES`` (default 10), ``LOAD_SPANS_PER_S`` (default 200), ``LOAD_SPANS_PER_REQUEST`` (256,
about what an OTel BatchSpanProcessor sends under load), ``LOAD_CONNECTIONS`` (2; at the ingest benchmark's rate use
as many as it does, 16, or a request's latency caps the rate).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from benchmarks.ingest_throughput import export_request

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "load.json"
PROJECT = "load"


def server_env(var: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a Keel process with its own var dir (SQLite + chDB under ``var``), plus ``extra``
    (e.g. ``KEEL_CLICKHOUSE_URL`` for server mode)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "DJANGO_")) and k not in {
        "DATABASE_URL", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "CELERY_BROKER_URL"}}
    env.update({"KEEL_VAR_DIR": str(var), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **(extra or {})})
    return env


def manage(var: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=server_env(var, env), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A ``manage.py serve --no-demo`` subprocess on a free port."""

    var: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)  # added to server_env(var)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.var / "serve.log"

    def start(self, timeout: float = 180) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "serve", "--no-demo", "--port", str(self.port)],
                cwd=ROOT, env=server_env(self.var, self.env), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}: {self.log.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"serve was not ready in {timeout:.0f} s: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 120) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def prepare(var: Path, project: str = PROJECT, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Migrate the Django database, create the project and an ingest+read key; returns (key, tenant_id).

    Creating a project syncs it to ClickHouse (``keel_projects``), so both schemas are migrated first.
    """
    manage(var, "migrate", "-v0", env=env)
    manage(var, "migrate_clickhouse", env=env)
    out = manage(var, "shell", "-c", (
        "from controlplane.models import Project; from controlplane.apikeys import issue_key; "
        f"p, _ = Project.objects.get_or_create(slug={project!r}, defaults={{'name': {project!r}}}); "
        "print(issue_key(p, ['ingest', 'read']).secret, p.tenant_id)"), env=env)
    key, tenant = out.split()[-2:]
    return key, tenant


_STORED = """
import json, sys
from ingestion.clickhouse.client import get_client
c = get_client()
p = {"t": sys.argv[1]}
ids = c.query("SELECT DISTINCT lower(TraceId), lower(SpanId) FROM otel_traces WHERE ProjectId = {t:String}",
              parameters=p).result_rows
rows = c.query("SELECT count() FROM otel_traces WHERE ProjectId = {t:String}", parameters=p).result_rows[0][0]
calls = c.query("SELECT count() FROM llm_calls FINAL WHERE ProjectId = {t:String}", parameters=p).result_rows[0][0]
json.dump({"ids": [a + b for a, b in ids], "rows": rows, "llm_calls_final": calls}, sys.stdout)
"""


def stored_ids(var: Path, tenant: str) -> dict[str, Any]:
    """Open the (stopped) server's store in a child process: distinct (TraceId, SpanId) and FINAL row counts."""
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + _STORED, tenant],
                          env={**server_env(var), "DJANGO_SETTINGS_MODULE": "controlplane.settings"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"counting stored spans failed: {done.stderr[-2000:]}")
    data = json.loads(done.stdout)
    data["ids"] = set(data["ids"])
    return data


class Sender:
    """Paced OTLP/HTTP protobuf sender that retries like the OTel exporter and records what was acknowledged."""

    def __init__(self, port: int, key: str, spans_per_request: int, seed: int) -> None:
        self.port, self.key, self.spans_per_request = port, key, spans_per_request
        self.template = ExportTraceServiceRequest.FromString(export_request(spans_per_request, seed=seed))
        self.acked: set[str] = set()
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.retries = 0
        self.lock = threading.Lock()

    def _body(self) -> tuple[bytes, list[str]]:
        msg, now = self.template, time.time_ns()
        ids = []
        for span in msg.resource_spans[0].scope_spans[0].spans:
            span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
            length = span.end_time_unix_nano - span.start_time_unix_nano
            span.start_time_unix_nano, span.end_time_unix_nano = now - length - 1_000_000, now - 1_000_000
            ids.append(span.trace_id.hex() + span.span_id.hex())
        return msg.SerializeToString(), ids

    def send_once(self, conn: http.client.HTTPConnection, body: bytes) -> tuple[int, float]:
        conn.request("POST", "/v1/traces", body=body, headers={
            "Content-Type": "application/x-protobuf", "Authorization": f"Bearer {self.key}"})
        response = conn.getresponse()
        response.read()
        retry_after = float(response.headers.get("Retry-After") or 1)
        return response.status, retry_after

    def send(self, body: bytes, ids: list[str], give_up_at: float) -> bool:
        """POST until 200 (retrying 429/5xx/connection errors after Retry-After); True when acknowledged."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            while time.monotonic() < give_up_at:
                started = time.monotonic()
                try:
                    status, retry_after = self.send_once(conn, body)
                except OSError:
                    status, retry_after = 0, 0.5
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                with self.lock:
                    self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
                    if status == 200:
                        self.latencies.append(time.monotonic() - started)
                        self.acked.update(ids)
                        return True
                    self.retries += 1
                if 400 <= status < 500 and status != 429:
                    raise RuntimeError(f"the server refused a valid request with {status}")
                time.sleep(min(retry_after, 5))
            return False
        finally:
            conn.close()

    def run(self, spans_per_s: float, seconds: float, connections: int = 2) -> None:
        """Pace requests to ``spans_per_s`` across ``connections`` threads for ``seconds``."""
        interval = self.spans_per_request / spans_per_s * connections
        stop = time.monotonic() + seconds

        def worker(offset: float) -> None:
            next_at = time.monotonic() + offset
            while next_at < stop and time.monotonic() < stop:  # a slow server lowers the rate, not the deadline
                time.sleep(max(0.0, next_at - time.monotonic()))
                with self.lock:
                    body, ids = self._body()
                self.send(body, ids, give_up_at=stop + 120)
                next_at += interval

        threads = [threading.Thread(target=worker, args=(i * interval / connections,)) for i in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class Reader:
    """Concurrent reads: the calls and usage API with the key, dashboard pages with a logged-in session."""

    PAGES = ["/", "/cost/", "/latency/", "/traces/", "/alerts/", "/versions/"]
    API = ["/api/v1/calls?limit=50", "/api/v1/usage?group_by=model", "/api/v1/usage?group_by=route",
           "/api/v1/alerts"]

    def __init__(self, server: Server, key: str, project: str = PROJECT, pause_s: float = 1.0) -> None:
        self.server, self.key, self.project, self.pause_s = server, key, project, pause_s
        self.timings: dict[str, list[float]] = {}
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def _session(self) -> Any:
        import requests

        session = requests.Session()
        session.get(f"{self.server.url}/login/", timeout=120)
        password = (self.server.var / "admin_password").read_text().strip()
        response = session.post(f"{self.server.url}/login/", timeout=120, data={
            "username": "admin", "password": password, "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
            headers={"Referer": f"{self.server.url}/login/"})
        if "sessionid" not in session.cookies:
            raise RuntimeError(f"could not log in to the dashboards ({response.status_code})")
        return session

    def _loop(self, make_client: Any, paths: list[tuple[str, str]]) -> None:
        import requests

        try:
            client = make_client()
        except (requests.RequestException, RuntimeError) as exc:
            with self.lock:
                self.failures.append(f"setting up the reader: {exc}")
            return
        i = 0
        while not self.stop.is_set():
            path, name = paths[i % len(paths)]
            i += 1
            started = time.monotonic()
            try:
                response = client.get(self.server.url + path, timeout=120)
                ok = response.status_code == 200
            except requests.RequestException as exc:
                ok, response = False, exc
            with self.lock:
                self.timings.setdefault(name, []).append(time.monotonic() - started)
                if not ok:
                    self.failures.append(f"{name}: {getattr(response, 'status_code', response)}")
            self.stop.wait(self.pause_s)

    def _api_client(self) -> Any:
        import requests

        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {self.key}"
        return api

    def run(self) -> None:
        """One thread reading the API with the key, one reading the dashboard pages as a logged-in user."""
        loops = [(self._api_client, [(p, p.split("?")[0]) for p in self.API]),
                 (self._session, [(f"{p}?project={self.project}", f"page {p}") for p in self.PAGES])]
        threads = [threading.Thread(target=self._loop, args=loop) for loop in loops]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1)


def _sweeps(server: Server) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    pattern = r'^keel_task_runs_total\{task="anomaly\.sweep_project"\} (\S+)$'
    return sum(float(m) for m in re.findall(pattern, text, re.M))


def run(seconds: float, spans_per_s: float, spans_per_request: int = 256, var: Path | None = None,
        connections: int = 2) -> dict[str, Any]:
    """One load run; returns the figures (does not write the result file)."""
    own_var = var is None
    var = var or Path(tempfile.mkdtemp(prefix="keel-load-"))
    key, tenant = prepare(var)
    server = Server(var)
    load_before = os.getloadavg()
    server.start()
    sender = Sender(server.port, key, spans_per_request, seed=11)
    reader = Reader(server, key)
    rss: list[tuple[float, float]] = [(0.0, round(server.rss_mb(), 1))]
    started = time.monotonic()
    send_thread = threading.Thread(target=sender.run, args=(spans_per_s, seconds, connections))
    read_thread = threading.Thread(target=reader.run)
    send_thread.start()
    read_thread.start()
    while send_thread.is_alive():
        send_thread.join(max(1.0, seconds / 20))
        rss.append((round(time.monotonic() - started, 1), round(server.rss_mb(), 1)))
    elapsed = time.monotonic() - started
    reader.stop.set()
    read_thread.join()
    sweeps = _sweeps(server)
    exit_code = server.stop()
    stored = stored_ids(var, tenant)
    missing, extra = sender.acked - stored["ids"], stored["ids"] - sender.acked
    result: dict[str, Any] = {
        "what": "manage.py serve --no-demo (embedded chDB, in-process worker + beat) fed OTLP/HTTP protobuf GenAI "
                "spans at a paced rate with concurrent API/dashboard reads and the minutely detector sweep; "
                "sent vs stored compared by (TraceId, SpanId) after a graceful stop",
        "seconds": round(elapsed, 1),
        "target_spans_per_s": spans_per_s,
        "achieved_spans_per_s": round(len(sender.acked) / elapsed, 1),
        "spans_per_request": spans_per_request,
        "connections": connections,
        "spans_acknowledged": len(sender.acked),
        "spans_stored_distinct": len(stored["ids"]),
        "otel_traces_rows": stored["rows"],
        "llm_calls_rows_final": stored["llm_calls_final"],
        "acknowledged_but_missing": len(missing),
        "stored_but_never_acknowledged": len(extra),
        "requests_by_status": sender.statuses,
        "client_retries": sender.retries,
        "ingest_p50_ms": _pct(sender.latencies, 0.50),
        "ingest_p99_ms": _pct(sender.latencies, 0.99),
        "reads": {name: {"n": len(v), "p50_ms": _pct(v, 0.5), "p99_ms": _pct(v, 0.99)}
                  for name, v in sorted(reader.timings.items())},
        "read_failures": reader.failures[:20],
        "read_failure_count": len(reader.failures),
        "detector_sweeps_run": sweeps,
        "rss_mb_samples": rss,
        "rss_mb_start": rss[0][1],
        "rss_mb_after_first_third": next((mb for t, mb in rss if t >= elapsed / 3), rss[-1][1]),
        "rss_mb_end": rss[-1][1],
        "server_exit_code": exit_code,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if own_var:
        shutil.rmtree(var, ignore_errors=True)
    return result


def main() -> dict[str, Any]:
    minutes = float(os.environ.get("LOAD_MINUTES", "10"))
    result = run(minutes * 60, float(os.environ.get("LOAD_SPANS_PER_S", "200")),
                 int(os.environ.get("LOAD_SPANS_PER_REQUEST", "256")),
                 connections=int(os.environ.get("LOAD_CONNECTIONS", "2")))
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mb_samples"}, indent=2))
    return result


if __name__ == "__main__":
    main()
