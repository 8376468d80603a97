"""`make run` (demo on): admin login, demo key in the banner, history and live traffic visible through the API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.runtime.test_serve import _env, _free_port, _wait_ready
from tests.support import ROOT

pytestmark = pytest.mark.slow


def _login(url: str, password: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{url}/admin/login/", timeout=10)
    session.post(f"{url}/admin/login/", timeout=10, headers={"Referer": f"{url}/admin/login/"}, data={
        "username": "admin", "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"],
        "next": "/admin/"}).raise_for_status()
    return session


def test_demo_serves_history_and_live_traffic_and_restarts_with_the_same_key(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    command = [sys.executable, "manage.py", "serve", "--demo", "--port", str(port), "--backfill-days", "0.05",
               "--rate", "3"]
    process = subprocess.Popen(command, cwd=ROOT, env=_env(tmp_path), stdout=log.open("w"),
                               stderr=subprocess.STDOUT, text=True)
    try:
        _wait_ready(url, process, log)
        key = (tmp_path / "demo_ingest_key").read_text().strip()
        assert f"OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20{key}" in log.read_text().splitlines()
        session = _login(url, (tmp_path / "admin_password").read_text().strip())
        deadline = time.monotonic() + 180
        usage: dict = {}  # type: ignore[type-arg]
        while time.monotonic() < deadline:
            state = json.loads((tmp_path / "demo_backfill.json").read_text())
            response = session.get(f"{url}/api/v1/usage", params={"project": "demo", "group_by": "route"},
                                   timeout=30)
            assert response.status_code == 200, response.text
            usage = response.json()
            routes = {g["key"] for g in usage["results"]}
            if state["filled_from"] <= state["start"] and len(routes) == 3 and usage["totals"]["calls"] > 100:
                break
            time.sleep(2)
        else:
            pytest.fail(f"demo data did not arrive: {usage} {log.read_text()[-2000:]}")
        assert routes == {"chat-default", "summarize", "embed"}
        assert usage["totals"]["cost_usd"] > 0, "demo models are priced from the default price list"
        assert usage["totals"]["unpriced_calls"] == 0, usage
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=120)
    assert code == 0, log.read_text()[-3000:]

    restarted = subprocess.Popen(command, cwd=ROOT, env=_env(tmp_path), stdout=(tmp_path / "again.log").open("w"),
                                 stderr=subprocess.STDOUT, text=True)
    try:
        _wait_ready(url, restarted, tmp_path / "again.log")
        assert f"Ingest key:    {key}" in (tmp_path / "again.log").read_text()
    finally:
        restarted.send_signal(signal.SIGINT)
        assert restarted.wait(timeout=120) == 0
