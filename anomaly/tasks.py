"""Celery entry points for detection and notification; each is a few lines around a plain function.

All tasks are idempotent, so ``acks_late`` + ``reject_on_worker_lost`` (a crashed worker's task runs again) can
never double an alert (fingerprint dedup) or a notification (one attempt row per channel × event, claimed before
sending). ``expires`` drops a sweep that waited in the queue past the next one.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from anomaly import drift_jobs, sweep
from anomaly.notifications import deliver, deliver_due
from controlplane.models import Project

_COMMON: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="anomaly.sweep_all", expires=55, **_COMMON)
def sweep_all() -> int:
    """Fan out one sweep per project."""
    ids = list(Project.objects.values_list("pk", flat=True))
    for project_id in ids:
        sweep_project.apply_async(args=[project_id], expires=55)
    return len(ids)


@shared_task(name="anomaly.sweep_project", expires=55, **_COMMON)
def sweep_project(project_id: int) -> dict[str, Any]:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return {}
    report = sweep.sweep_project(project)
    return {"series": report.series, "open": report.alerts_open, "resolved": report.resolved,
            "failures": len(report.failures)}


@shared_task(name="anomaly.drift_all", expires=540, **_COMMON)
def drift_all() -> int:
    ids = list(Project.objects.values_list("pk", flat=True))
    for project_id in ids:
        drift_project.apply_async(args=[project_id], expires=540)
    return len(ids)


@shared_task(name="anomaly.drift_project", expires=540, **_COMMON)
def drift_project(project_id: int) -> int:
    project = Project.objects.filter(pk=project_id).first()
    return 0 if project is None else len(drift_jobs.run_drift(project))


@shared_task(name="anomaly.deliver_notification", bind=True, max_retries=None, **_COMMON)
def deliver_notification(self: Any, attempt_id: int) -> None:
    delay = deliver(attempt_id)
    if delay is not None:
        raise self.retry(countdown=delay)


@shared_task(name="anomaly.retry_notifications", expires=55, **_COMMON)
def retry_notifications() -> int:
    """Safety net for lost tasks and due retries."""
    return deliver_due()
