"""`make run` as a newcomer sees it: time to the first chart with data, and memory under steady demo traffic.

Phase 1 starts ``manage.py serve --demo`` on a fresh var directory (what `make run` does once dependencies are
installed) and measures the time until the demo project's usage API — read from the per-minute rollups, the
same data the charts draw — returns calls. Phase 2 starts a fresh demo without the history backfill and samples
the process's resident memory for ``--minutes`` of live simulated traffic (flat = no leak).

    python -m benchmarks.runtime_memory [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return round(int(match.group(1)) / 1024, 1) if match else float("nan")


class Served:
    def __init__(self, var: Path, extra: list[str]) -> None:
        self.var = var
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "DJANGO_")) and k not in {
            "DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY"}}
        env["KEEL_VAR_DIR"] = str(var)
        self.log = var / "serve.log"
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--demo", "--port", str(self.port), *extra], cwd=ROOT, env=env,
            stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def wait_ready(self, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return self.elapsed()
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("serve did not become ready")

    def login(self) -> requests.Session:
        session = requests.Session()
        password = (self.var / "admin_password").read_text().strip()
        session.get(f"{self.url}/admin/login/", timeout=10)
        response = session.post(f"{self.url}/admin/login/", timeout=10, data={
            "username": "admin", "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        }, headers={"Referer": f"{self.url}/admin/login/"})
        response.raise_for_status()
        return session

    def demo_calls(self, session: requests.Session) -> int:
        response = session.get(f"{self.url}/api/v1/usage", params={"project": "demo"}, timeout=30)
        if response.status_code != 200:
            return 0
        return int(response.json().get("totals", {}).get("calls") or 0)

    def stop(self) -> tuple[int, float]:
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=180)
        return code, round(time.monotonic() - started, 1)


def first_chart(var: Path) -> dict[str, object]:
    served = Served(var, [])
    try:
        ready = served.wait_ready()
        session = served.login()
        deadline = time.monotonic() + 300
        calls = 0
        while time.monotonic() < deadline and calls == 0:
            calls = served.demo_calls(session)
            if calls == 0:
                time.sleep(0.5)
        first = served.elapsed()
        return {"ready_s": ready, "first_chart_s": first if calls else None, "calls_at_first_chart": calls,
                "stop": served.stop()[0]}
    finally:
        if served.process.poll() is None:
            served.process.kill()


def steady_memory(var: Path, minutes: float) -> dict[str, object]:
    served = Served(var, ["--backfill-days", "0"])
    try:
        served.wait_ready()
        session = served.login()
        pid = served.process.pid
        samples: list[tuple[float, float]] = []
        warmup_s = 60.0
        time.sleep(warmup_s)
        start = time.monotonic()
        while time.monotonic() - start < minutes * 60:
            samples.append((round(time.monotonic() - start, 1), _rss_mb(pid)))
            time.sleep(15)
        samples.append((round(time.monotonic() - start, 1), _rss_mb(pid)))
        calls = served.demo_calls(session)
        code, stop_s = served.stop()
        rss = [r for _t, r in samples]
        # chDB's caches and merges make RSS oscillate by tens of MB: compare the medians of the first and
        # last thirds, not two single samples.
        third = max(1, len(rss) // 3)
        start_rss, end_rss = statistics.median(rss[:third]), statistics.median(rss[-third:])
        return {
            "minutes": minutes, "warmup_s": warmup_s, "start_rss_mb": start_rss, "end_rss_mb": end_rss,
            "min_rss_mb": min(rss), "max_rss_mb": max(rss), "growth_mb": round(end_rss - start_rss, 1),
            "calls_in_last_24h": calls,
            "shutdown_s": stop_s, "exit_code": code, "samples": samples,
        }
    finally:
        if served.process.poll() is None:
            served.process.kill()


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory(prefix="keel-bench-run-") as first_var, \
            tempfile.TemporaryDirectory(prefix="keel-bench-mem-") as mem_var:
        chart = first_chart(Path(first_var))
        print(f"make run → ready in {chart['ready_s']} s, first chart with data in {chart['first_chart_s']} s",
              flush=True)
        memory = steady_memory(Path(mem_var), args.minutes)
    print(f"RSS under demo traffic: start {memory['start_rss_mb']} MB, end {memory['end_rss_mb']} MB "
          f"after {args.minutes:g} min (medians of first/last third; range {memory['min_rss_mb']}-"
          f"{memory['max_rss_mb']} MB)", flush=True)
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "first_chart": chart,
        "steady_memory": memory,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "runtime_memory.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
