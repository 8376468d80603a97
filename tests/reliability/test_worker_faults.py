"""Faults around the background side: Redis restarted under a running Celery worker and the Channels layer.

The machine's shared Redis must not be restarted, so each test starts its OWN ``redis-server`` on a free port
(no persistence), SIGKILLs it and starts it again on the same port. The worker is the production command
(``celery -A controlplane worker``) in a subprocess with its own var dir.
"""

from __future__ import annotations

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

from benchmarks.load import free_port, manage, server_env
from tests.alerts.test_celery import redis_app  # noqa: F401  (fixture: an in-process worker on real Redis)
from tests.conftest import REQUIRE_SERVICES
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@dataclass
class OwnRedis:
    port: int
    dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if not Path("/usr/bin/redis-server").exists() and not any(
            (Path(p) / "redis-server").exists() for p in os.environ.get("PATH", "").split(":")):
        if REQUIRE_SERVICES:
            pytest.fail("redis-server is not installed and KEEL_REQUIRE_SERVICES=1 (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    redis = OwnRedis(free_port(), tmp_path)
    redis.start()
    yield redis
    if redis.process and redis.process.poll() is None:
        redis.kill()


def _runs(metrics_port: int, task: str) -> float:
    """Task runs counted by the worker itself (its --metrics-port endpoint)."""
    import re
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    except OSError:
        return 0.0
    return sum(float(v) for v in re.findall(rf'^keel_task_runs_total{{task="{re.escape(task)}"}} (\S+)$', text, re.M))


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_celery_worker_reconnects_after_redis_restart(own_redis: OwnRedis, tmp_path: Path) -> None:
    from celery import Celery

    var = tmp_path / "var"
    var.mkdir()
    manage(var, "migrate", "-v0")
    log = tmp_path / "worker.log"
    env = {**server_env(var), "CELERY_BROKER_URL": own_redis.url}
    metrics = free_port()
    with log.open("wb") as out:  # as deploy/ runs it: threads pool, metrics endpoint
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--loglevel=INFO", "--pool=threads",
             "--concurrency=2", "--without-gossip", "--without-mingle", "--metrics-port", str(metrics)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    producer = Celery("reliability-producer", broker=own_redis.url, set_as_current=False)
    producer.conf.broker_connection_retry_on_startup = True
    task = "anomaly.retry_notifications"
    try:
        producer.send_task(task)
        _wait(lambda: _runs(metrics, task) >= 1, 120, "the first task")
        # Let the late ack reach Redis first: a broker dying during that very ack hits a kombu race (restoring the
        # unacked message on an already released connection raises AttributeError and the worker exits;
        # celery/kombu#970, #582). Deployments run workers under a restart policy (deploy/docker-compose.yml).
        time.sleep(1.0)
        first_redis = own_redis.process
        own_redis.kill()
        time.sleep(2)
        assert worker.poll() is None, "the worker died with Redis"
        own_redis.start()
        producer.send_task(task)
        _wait(lambda: _runs(metrics, task) >= 2, 120, f"the task after the restart:\n{log.read_text()[-2000:]}")
        assert worker.poll() is None
        # Redis kept nothing (no persistence) and is a new process: the task can only have come through a new
        # connection the worker opened by itself.
        assert first_redis is not None and first_redis.returncode is not None and own_redis.process is not first_redis
    finally:
        producer.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def test_channel_layer_works_again_after_redis_restart(own_redis: OwnRedis) -> None:
    import asyncio

    import redis.exceptions
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[own_redis.url])

    async def round_trip(n: int) -> dict[str, object]:
        channel = await layer.new_channel()
        await layer.group_add("reliability", channel)
        await layer.group_send("reliability", {"type": "probe.message", "n": n})
        return await asyncio.wait_for(layer.receive(channel), 5)

    assert (await round_trip(1))["n"] == 1
    own_redis.kill()
    await asyncio.sleep(1)
    own_redis.start()
    failures = 0
    deadline = time.monotonic() + 30
    while True:  # the first use after the restart may see the dead connection once; no reset, no new layer
        try:
            message = await round_trip(2)
            break
        except (ConnectionError, OSError, asyncio.TimeoutError, redis.exceptions.ConnectionError) as exc:  # noqa: UP041
            failures += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"the channel layer did not reconnect: {exc!r}") from None
            await asyncio.sleep(0.5)
    assert message["n"] == 2
    assert failures <= 2, failures
    await layer.flush()


# --- a Celery worker killed mid-task ----------------------------------------------------------------------------

_SETUP = """
from anomaly import alerts
from anomaly.models import NotificationChannel
from controlplane.models import Project
p = Project.objects.create(slug="worker-kill", name="worker kill")
NotificationChannel.objects.create(project=p, name="hook", kind="webhook", config={"url": "URL", "secret": "s3cret"})
alert = alerts.raise_alert(project=p, title="gateway push failed", detail="boom", route="chat")
print("ALERT", alert.pk)
"""

_STATE = """
import json
from anomaly.models import Alert, NotificationAttempt
from anomaly.notifications.delivery import deliver_due
from django.utils import timezone
from datetime import timedelta
if "DUE" == "yes":
    deliver_due(now=timezone.now() + timedelta(minutes=6))
print(json.dumps({"alerts": Alert.objects.count(),
                  "attempts": list(NotificationAttempt.objects.values_list("status", "attempts"))}))
"""


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _redis_count(url: str, *command: str) -> int:
    import redis

    return int(redis.Redis.from_url(url).execute_command(*command) or 0)


def test_worker_killed_mid_task_runs_it_again_without_duplicates(own_redis: OwnRedis, postgres_url: str,
                                                                  tmp_path: Path) -> None:
    """The prefork child running ``anomaly.deliver_notification`` is SIGKILLed while the webhook call is in flight.
    ``acks_late`` + ``reject_on_worker_lost`` put the message back, a new child runs it again, and the delivery's
    lease stops the second run from sending a duplicate; the retry sweep delivers it once the lease expires.
    PostgreSQL is shared by the test's management commands and the worker (SQLite does not share well)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[bytes] = []
    release = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(body)
            if len(received) == 1:
                release.wait(60)  # the first delivery hangs: the worker is mid-task
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    var = tmp_path / "var"
    var.mkdir()
    env = {**server_env(var), "DATABASE_URL": postgres_url, "CELERY_BROKER_URL": own_redis.url}

    def shell(code: str) -> str:
        done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", code], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    for step in (("migrate", "-v0"), ("migrate_clickhouse",)):
        done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *step], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    shell(_SETUP.replace("URL", f"http://127.0.0.1:{hook.server_address[1]}/hook"))
    assert _redis_count(own_redis.url, "LLEN", "celery") == 1  # the delivery task is queued
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--loglevel=INFO", "--pool=prefork",
             "--concurrency=1", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: len(received) >= 1, 120, "the webhook call")
        children = _children(worker.pid)
        assert len(children) == 1, children
        os.kill(children[0], signal.SIGKILL)
        release.set()
        # The message goes back and is consumed again (by a new child); then nothing is queued or unacked.
        _wait(lambda: len(_children(worker.pid)) == 1 and _children(worker.pid) != children, 60, "a new child")
        _wait(lambda: _redis_count(own_redis.url, "LLEN", "celery") == 0
              and _redis_count(own_redis.url, "HLEN", "unacked") == 0, 60, "the redelivered task to finish")
        time.sleep(2)
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    import json

    text = log.read_text(errors="replace")
    assert "WorkerLostError('Worker exited prematurely: signal 9 (SIGKILL)" in text, text[-2000:]
    assert len(received) == 1, "the redelivered task sent the notification again while the first was in flight"
    state = json.loads(shell(_STATE).strip().splitlines()[-1])
    assert state["alerts"] == 1
    assert [status for status, _tries in state["attempts"]] == ["sending"], state  # leased by the killed run
    # After the lease, the retry sweep (beat's anomaly.retry_notifications) delivers it exactly once more.
    try:
        state = json.loads(shell(_STATE.replace('"DUE"', '"yes"')).strip().splitlines()[-1])
        again = json.loads(shell(_STATE.replace('"DUE"', '"yes"')).strip().splitlines()[-1])
    finally:
        hook.shutdown()
    assert state["attempts"] == [["delivered", 1]], state
    assert again == state and len(received) == 2


# --- the whole worker process killed mid-task: redelivery by the broker's visibility timeout --------------------

_REMEDIATION_SETUP = """
import uuid
from datetime import timedelta
from django.utils import timezone
from anomaly.models import Alert, NotificationChannel
from controlplane.models import GatewayAdapter, Policy, Project
from controlplane.routing import services
p = Project.objects.create(slug="whole-worker-kill", name="whole worker kill")
actor = services.Actor("user:setup")
route = services.declare_route(p, "chat-default", actor=actor)
services.declare_deployment(route, "chat-default-v1", actor=actor, provider="openai", model="m1", model_version="m1")
services.declare_deployment(route, "chat-default-v2", actor=actor, provider="openai", model="m2", model_version="m2")
GatewayAdapter.objects.create(project=p, name="gw", kind="webhook", url="HOOK/push", secret="s3cret", timeout_s=90)
NotificationChannel.objects.create(project=p, name="pager", kind="webhook",
                                   config={"url": "HOOK/notify", "secret": "x"})
Policy.objects.create(project=p, name="latency -> v2", detector="latency_p95", action="reroute", mode="auto",
                      reroute_to=route.deployments.get(gateway_id="chat-default-v2"), min_calls=0, min_duration_s=0)
opened = timezone.now() - timedelta(minutes=10)
alert = Alert.objects.create(project=p, fingerprint=uuid.uuid4().hex, detector="latency_p95", route="chat-default",
                             series_key={"route": "chat-default"}, title="latency_p95 on chat-default",
                             severity="critical", opened_at=opened, last_seen_at=opened, episode_started_at=opened,
                             group_key=uuid.uuid4().hex)
print("ALERT", alert.pk, "VERSION", route.version)
"""

_REMEDIATION_STATE = """
import json
from anomaly.models import Alert, NotificationAttempt
from controlplane.models import Action, AuditEntry, GatewaySync, Route
route = Route.objects.get(project__slug="whole-worker-kill", name="chat-default")
print(json.dumps({
    "alerts": Alert.objects.count(), "notifications": NotificationAttempt.objects.count(),
    "actions": list(Action.objects.values_list("kind", "state")),
    "executed": AuditEntry.objects.filter(event="policy.executed").count(),
    "applied": AuditEntry.objects.filter(event="action.applied").count(),
    "syncs": list(GatewaySync.objects.values_list("ok", flat=True)),
    "version": route.version,
    "active": route.revisions.get(is_active=True).effective_weights(),
}))
"""


def test_whole_worker_killed_mid_task_another_worker_runs_it_after_the_visibility_timeout(
        own_redis: OwnRedis, postgres_url: str, tmp_path: Path) -> None:
    """The production worker (threads pool, one process) is SIGKILLed while ``on_alert_fired`` waits on the
    gateway push of an automatic reroute. No child, no ``reject_on_worker_lost``: the message stays in Redis'
    ``unacked`` set until the visibility timeout (5 s here via KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS; 600 s by
    default) and a second worker restores and runs it. The killed run's transaction died with its PostgreSQL
    session, so the redelivered run applies the reroute exactly once: one action, one audit of each kind, one
    version bump, no failure page and no notification."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from celery import Celery

    pushes: list[dict[str, object]] = []
    notifications: list[bytes] = []
    release = threading.Event()

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/notify"):
                notifications.append(body)
            else:
                pushes.append(json.loads(body))
                if len(pushes) == 1:
                    release.wait(90)  # the first push hangs: the worker is mid-task when it is killed
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_args: object) -> None:
            pass

    gateway = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    var = tmp_path / "var"
    var.mkdir()
    env = {**server_env(var), "DATABASE_URL": postgres_url, "CELERY_BROKER_URL": own_redis.url,
           "KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS": "5"}

    def shell(code: str) -> str:
        done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", code], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    for step in (("migrate", "-v0"), ("migrate_clickhouse",)):
        done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *step], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    out = shell(_REMEDIATION_SETUP.replace("HOOK", f"http://127.0.0.1:{gateway.server_address[1]}")).split()
    alert_id, version_before = int(out[out.index("ALERT") + 1]), int(out[out.index("VERSION") + 1])
    producer = Celery("reliability-producer", broker=own_redis.url, set_as_current=False)
    producer.send_task("controlplane.routing.tasks.on_alert_fired", args=[alert_id])
    producer.close()

    def start_worker(name: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as out:  # as deploy/ runs it: threads pool
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--loglevel=INFO", "--pool=threads",
                 "--concurrency=1", "--without-gossip", "--without-mingle", "--hostname", f"{name}@%h"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    first = start_worker("first")
    second = None
    try:
        _wait(lambda: len(pushes) >= 1, 120, "the gateway push of the first run")
        assert _redis_count(own_redis.url, "HLEN", "unacked") == 1  # taken, not acknowledged (acks_late)
        first.send_signal(signal.SIGKILL)
        first.wait()
        release.set()
        assert _redis_count(own_redis.url, "LLEN", "celery") == 0
        assert _redis_count(own_redis.url, "HLEN", "unacked") == 1, "the killed worker's message is gone"
        second = start_worker("second")
        _wait(lambda: len(pushes) >= 2, 120, "the redelivered run's push:\n"
              + (tmp_path / "second.log").read_text(errors="replace")[-2000:])
        _wait(lambda: _redis_count(own_redis.url, "LLEN", "celery") == 0
              and _redis_count(own_redis.url, "HLEN", "unacked") == 0, 60, "the redelivered task to be acknowledged")
        time.sleep(3)  # a third run, if any, would push again within this
        assert second.poll() is None
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
        gateway.shutdown()
    assert first.returncode == -signal.SIGKILL
    assert len(pushes) == 2, "the task ran more than twice"
    assert pushes[0]["policy"] == pushes[1]["policy"], "the redelivered run pushed a different revision"
    state = json.loads(shell(_REMEDIATION_STATE).strip().splitlines()[-1])
    assert state["actions"] == [["reroute", "applied"]], state
    assert state["executed"] == 1 and state["applied"] == 1, state
    assert state["syncs"] == [True], state  # the killed run's sync record went with its transaction
    assert state["version"] == version_before + 1, state
    assert state["active"] == {"chat-default-v2": 100.0}, state
    assert state["alerts"] == 1 and state["notifications"] == 0 and notifications == [], state


# --- a notification endpoint down: retries with backoff, detection goes on -------------------------------------

@pytest.mark.django_db(transaction=True)
def test_dead_notification_endpoint_retries_with_backoff_and_detection_goes_on(
        project, ch, redis_app, monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Real Redis, a real worker, the real sweep task over real rows in chDB. The webhook endpoint refuses
    connections: both sweeps still complete and open one alert per anomalous route (no failure, no duplicate);
    each page (one per incident) is retried by Celery with backoff (2 s, 4 s, … here, via
    KEEL_NOTIFY_RETRY_BASE_SECONDS), and once the endpoint is back on the same port each page is delivered once."""
    import datetime as dt
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from anomaly.models import Alert, AttemptStatus, ChannelKind, NotificationAttempt, NotificationChannel
    from tests.alerts.traffic import at_minute, insert, spans

    n = 2 * 1440
    for route, seed in (("support", 5), ("search", 6)):
        insert(ch, spans(project.tenant_id, route=route, model="gpt-a", minutes=range(n), seed=seed,
                         latency_ms=lambda m: 2400.0 if m >= n - 30 else 800.0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])  # closed: connections are refused until the endpoint below binds it
    NotificationChannel.objects.create(project=project, name="hook", kind=ChannelKind.WEBHOOK,
                                       config={"url": f"http://127.0.0.1:{port}/hook", "secret": "x"})
    settings.KEEL_NOTIFY_RETRY_BASE_SECONDS = 2
    started = time.monotonic()
    # The sweep sees the end of the synthetic data; the clock still moves, so the retries come due.
    monkeypatch.setattr("anomaly.sweep.timezone.now",
                        lambda: at_minute(n) + dt.timedelta(seconds=time.monotonic() - started))

    def route_alerts() -> dict[str, int]:
        return {a.route: a.pk for a in Alert.objects.filter(project=project, detector="latency_p95",
                                                            series_key__grouping="route_version")}

    def attempts(**where: object) -> int:
        return NotificationAttempt.objects.filter(alert__project=project, **where).count()

    first = redis_app.send_task("anomaly.sweep_project", args=[project.pk], ignore_result=False).get(timeout=180)
    assert first["open"] >= 2 and first["failures"] == 0, first
    opened = route_alerts()
    assert set(opened) == {"support", "search"}
    pages = attempts()  # one per incident: alerts that open together may be grouped into one page
    assert pages >= 1
    _wait(lambda: attempts(attempts__gte=2) == pages, 90, "two refused tries of each notification")
    refused = list(NotificationAttempt.objects.filter(alert__project=project))
    assert all("ConnectionError" in a.error for a in refused), [a.error for a in refused]
    paged = {a.alert_id for a in refused}

    second = redis_app.send_task("anomaly.sweep_project", args=[project.pk], ignore_result=False).get(timeout=180)
    assert second["failures"] == 0, second  # detection goes on while notifications fail
    assert route_alerts() == opened and attempts() == pages  # refreshed, not duplicated

    received: list[dict[str, object]] = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    endpoint = ThreadingHTTPServer(("127.0.0.1", port), Endpoint)  # back, on the same port
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    try:
        _wait(lambda: attempts(status=AttemptStatus.DELIVERED) == pages, 120, "delivery once the endpoint is back")
        time.sleep(3)  # a duplicate send would land within this
    finally:
        endpoint.shutdown()
        endpoint.server_close()
    tries = [a.attempts for a in NotificationAttempt.objects.filter(alert__project=project)]
    assert len(tries) == pages and min(tries) >= 3, tries  # two or more refused tries, then the one that got in
    assert sorted((r["id"], r["event"]) for r in received) == sorted((pk, "opened") for pk in paged)
