"""Every Celery beat schedule of Keel, in one registry.

Apps add an entry here (task name as a string, so this module imports no task code) instead of configuring beat
themselves; ``setup_periodic_tasks`` hands the registry to Celery when the app is configured, so the embedded
beat thread (``manage.py serve``) and a production ``celery -A controlplane beat`` run the same schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from celery import Celery


@dataclass(frozen=True)
class Periodic:
    task: str  # registered task name, e.g. "anomaly.tasks.run_detectors"
    every_seconds: float
    kwargs: dict[str, Any] = field(default_factory=dict)
    expires_seconds: float | None = None  # drop a run that waited longer than this in the queue


# name -> entry. Add yours with one line; keep names stable (beat keys its last-run state on them).
SCHEDULE: dict[str, Periodic] = {
    "anomaly-sweep": Periodic("anomaly.sweep_all", 60.0, expires_seconds=55),
    "anomaly-drift": Periodic("anomaly.drift_all", 600.0, expires_seconds=540),
    "anomaly-notification-retries": Periodic("anomaly.retry_notifications", 60.0, expires_seconds=55),
    "routing-verify-actions": Periodic("controlplane.routing.tasks.verify_pending_actions", 60.0, expires_seconds=55),
    "routing-enforce-budgets": Periodic("controlplane.routing.tasks.enforce_budgets", 300.0, expires_seconds=280),
}


def register(name: str, entry: Periodic) -> None:
    """Add an entry at import time (for code that prefers a call to editing the dict above)."""
    if name in SCHEDULE and SCHEDULE[name] != entry:
        raise ValueError(f"beat schedule {name!r} is already registered with a different entry")
    SCHEDULE[name] = entry


def setup_periodic_tasks(sender: Celery, **_: Any) -> None:
    """Connected to ``app.on_after_configure``: install every registered entry into the beat schedule."""
    for name, entry in SCHEDULE.items():
        options = {"expires": entry.expires_seconds} if entry.expires_seconds else {}
        sender.add_periodic_task(
            entry.every_seconds, sender.signature(entry.task, kwargs=entry.kwargs), name=name, **options
        )
