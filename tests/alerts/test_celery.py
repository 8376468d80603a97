"""The Celery tasks on the real Redis broker with a real worker thread; a redelivered task duplicates nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from celery import Celery
from celery.contrib.testing.worker import start_worker

import anomaly.tasks  # noqa: F401  (registers the shared tasks on every app)
from anomaly.models import Alert, AttemptStatus, ChannelKind, NotificationAttempt, NotificationChannel
from controlplane.celery import app as keel_app
from tests.alerts.helpers import serve
from tests.alerts.traffic import at_minute, insert, spans

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

N = 2 * 1440


@pytest.fixture
def redis_app(redis_url: str) -> Iterator[Celery]:
    """A Celery app on the real Redis (own queue, so no other worker takes our messages), current while in use."""
    queue = f"keel-test-{os.urandom(4).hex()}"
    app = Celery("keel-test", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue, task_acks_late=True, task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True, timezone="UTC",
    )
    app.set_current()
    app.set_default()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING", queues=[queue],
                          shutdown_timeout=30):
            yield app
    finally:
        keel_app.set_current()
        keel_app.set_default()


def _wait(predicate, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_sweep_task_on_redis_and_redelivery_is_idempotent(project, ch, redis_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    insert(ch, spans(project.tenant_id, route="support", model="gpt-a", minutes=range(N), seed=5,
                     latency_ms=lambda m: 2400.0 if m >= N - 30 else 800.0))
    receiver_gen = serve()
    receiver = next(receiver_gen)
    NotificationChannel.objects.create(project=project, name="hook", kind=ChannelKind.WEBHOOK,
                                       config={"url": f"{receiver.url}/hook", "secret": "x"})
    # The task computes "now" itself; pin the clock the sweep sees to the end of the synthetic data.
    monkeypatch.setattr("anomaly.sweep.timezone.now", lambda: at_minute(N))

    first = redis_app.send_task("anomaly.sweep_project", args=[project.pk], ignore_result=False)
    summary = first.get(timeout=180)
    assert summary["open"] >= 1 and summary["failures"] == 0
    alert = Alert.objects.get(project=project, detector="latency_p95", series_key__grouping="route_version")
    # The opening's webhook went out through the deliver_notification task on the same broker.
    _wait(lambda: NotificationAttempt.objects.filter(alert=alert, status=AttemptStatus.DELIVERED).exists())

    # acks_late redelivery after a worker crash = the same message run again.
    again = redis_app.send_task("anomaly.sweep_project", args=[project.pk], ignore_result=False)
    again.get(timeout=180)
    attempt = NotificationAttempt.objects.get(alert=alert)
    redo = redis_app.send_task("anomaly.deliver_notification", args=[attempt.pk], ignore_result=False)
    redo.get(timeout=60)

    assert Alert.objects.filter(project=project, detector="latency_p95",
                                series_key__grouping="route_version").count() == 1
    assert NotificationAttempt.objects.filter(alert__project=project).count() == 1
    assert [r.json()["event"] for r in receiver.on("/hook")] == ["opened"]
    receiver_gen.close()
