"""PostgreSQL sessions under the production ASGI server do not pile up.

Under ASGI, Django runs each request's sync code (views, ORM calls from async views) in a thread that ends with
the request. With persistent connections (CONN_MAX_AGE > 0) each such thread left its PostgreSQL session open
until the garbage collector happened to find it: 20 requests left 7 sessions behind before the fix.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg

from benchmarks.load import free_port, server_env
from tests.support import ROOT


def _sessions(database: str) -> int:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()
    return int(row[0]) if row else 0


def test_requests_under_uvicorn_leave_no_postgres_session_open(postgres_url: str, tmp_path: Path) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    port = free_port()
    env = {**server_env(tmp_path), "DATABASE_URL": postgres_url}
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:  # as deploy/ runs it
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "controlplane.asgi:application", "--host",
                                   "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(f"uvicorn did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        for _ in range(30):  # readiness runs a query on the Django database in the request's own thread
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as response:
                assert b'"database": {"ok": true' in response.read()
        time.sleep(0.5)
        assert server.poll() is None
        assert _sessions(database) == 0, "requests left PostgreSQL sessions open in their finished threads"
    finally:
        server.terminate()
        server.wait(30)
