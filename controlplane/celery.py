"""The Celery app. Tasks live beside their domain code; schedules live in ``controlplane.schedule``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("keel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["controlplane.routing"])  # remediation tasks live beside their domain code

from controlplane import metrics  # noqa: E402  (task run/failure counters via Celery signals)
from controlplane.schedule import setup_periodic_tasks  # noqa: E402

app.on_after_configure.connect(setup_periodic_tasks)
metrics.connect_celery_signals()
metrics.install_worker_metrics_endpoint(app)
