"""Celery tasks for remediation: thin wrappers over ``controlplane.routing.policies``."""

from __future__ import annotations

from celery import shared_task

from controlplane.routing import policies


@shared_task(name="controlplane.routing.tasks.on_alert_fired")
def on_alert_fired(alert_id: int) -> list[str]:
    return [f"{d.policy_id}:{d.outcome}" for d in policies.on_alert_fired(alert_id)]


@shared_task(name="controlplane.routing.tasks.verify_pending_actions")
def verify_pending_actions() -> int:
    return len(policies.verify_pending_actions())


@shared_task(name="controlplane.routing.tasks.enforce_budgets")
def enforce_budgets() -> int:
    return len(policies.enforce_budgets())
