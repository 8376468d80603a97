"""The task path on the real Redis broker: Keel's embedded worker/beat threads and the production worker command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

from celery import Celery

from controlplane.runtime.celery_threads import EmbeddedCelery
from controlplane.schedule import Periodic, setup_periodic_tasks
from tests.support import ROOT

pytestmark = pytest.mark.redis


def _wait_for(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_and_beat_threads_run_tasks_from_redis(redis_url: str, tmp_path: Path) -> None:
    """Runs in a fresh interpreter, like `manage.py serve` does: a process that already sent a task on the in-memory
    broker (as earlier tests in this session do through the alert service) never starts an embedded worker."""
    if os.environ.get("KEEL_ISOLATED_TEST") != "1":
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"{__file__}::test_worker_and_beat_threads_run_tasks_from_redis"],
            cwd=ROOT, env={**os.environ, "KEEL_ISOLATED_TEST": "1"}, capture_output=True, text=True, timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        assert "1 passed" in result.stdout
        return
    marker = f"keel-test-{uuid.uuid4().hex}"
    store = redis.Redis.from_url(redis_url)
    app = Celery(f"keel-test-{uuid.uuid4().hex[:6]}", broker=redis_url, set_as_current=False)
    app.conf.task_default_queue = f"q-{marker}"  # this test's own queue: nothing else consumes it
    app.conf.task_ignore_result = True

    @app.task(name="tests.runtime.record")
    def record(value: str) -> None:
        time.sleep(0.5)  # still running when the worker is told to stop: warm shutdown must finish it
        store.rpush(marker, value)

    from controlplane import schedule

    schedule.SCHEDULE["test-tick"] = Periodic("tests.runtime.record", 1.0, kwargs={"value": "tick"})
    try:
        setup_periodic_tasks(app)
    finally:
        del schedule.SCHEDULE["test-tick"]
    runtime = EmbeddedCelery(app, tmp_path, concurrency=2)
    runtime.start()
    try:
        record.delay("sent")
        assert _wait_for(lambda: b"sent" in store.lrange(marker, 0, -1)), "the task sent through Redis never ran"
        assert _wait_for(lambda: b"tick" in store.lrange(marker, 0, -1)), "beat never scheduled the periodic task"
        record.delay("in-flight")
        time.sleep(0.3)
    finally:
        runtime.stop(timeout=30)
        values = store.lrange(marker, 0, -1)
        store.delete(marker)
    assert b"in-flight" in values, "a task running at shutdown was lost"


def test_production_worker_command_connects_to_redis(redis_url: str, tmp_path: Path) -> None:
    """`celery -A controlplane worker` (the docker-compose worker) starts against Redis and answers a ping."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "DJANGO_"))}
    env.update({"CELERY_BROKER_URL": redis_url, "KEEL_VAR_DIR": str(tmp_path)})
    node = f"keeltest-{uuid.uuid4().hex[:8]}@localhost"
    metrics_port = _free_port()
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool", "threads", "-c", "1",
         "-n", node, "--without-mingle", "--without-gossip", "-Q", f"q-{node}", "-l", "WARNING",
         "--metrics-port", str(metrics_port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    app = Celery("probe", broker=redis_url, set_as_current=False)
    try:
        assert _wait_for(lambda: bool(app.control.ping(destination=[node], timeout=1.0)), timeout=90), (
            (tmp_path / "worker.log").read_text()[-2000:]
        )
        scrape = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert "keel_task_runs_total" in scrape and "process_resident_memory_bytes" in scrape
    finally:
        worker.terminate()  # SIGTERM = warm shutdown
        code = worker.wait(timeout=60)
    assert code == 0, (tmp_path / "worker.log").read_text()[-2000:]
