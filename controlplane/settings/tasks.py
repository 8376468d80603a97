"""Celery: in-memory broker in the embedded runtime, Redis (or RabbitMQ) in production."""

from __future__ import annotations

from .env import get_str

CELERY_BROKER_URL = get_str("CELERY_BROKER_URL", "memory://")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
