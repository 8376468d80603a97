"""Celery: in-memory broker in the embedded runtime, Redis (or RabbitMQ) in production."""

from __future__ import annotations

from .env import StartupError, get_int, get_str

CELERY_BROKER_URL = get_str("CELERY_BROKER_URL", "memory://")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# A task a worker took but never acknowledged (the worker was killed mid-task) goes to another worker after this
# many seconds (Redis). It must exceed the longest task's run time, or a slow task would also run a second time.
KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS = get_int("KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS", 600)
if KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS < 1:
    raise StartupError(f"KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS={KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS} must be at "
                       "least 1 second.")
# Each worker looks for such expired messages every interval × throttle seconds (kombu's default 10 × 10 s at the
# 600 s default); a short timeout gets a proportionally quicker look, else redelivery would wait for the 100 s sweep.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS,
    "unacked_restore_interval": min(10, KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS),
    "unacked_restore_throttle": max(1, min(10, KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS // 60)),
}
