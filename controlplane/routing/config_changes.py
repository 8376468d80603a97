"""Create, change and delete remediation policies and budgets: the one write path the API and the in-app forms
share, so every change is saved and audited the same way whichever door it came through.

Callers validate first with the model's serializer (``PolicySerializer``/``BudgetSerializer`` in
``controlplane.api``, given the project in its context); these functions save and append the audit entry.
"""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from controlplane.models import Project
from controlplane.routing import audit

# Never copied into the audit log (gateway adapter secrets pass through the same API base class).
_SECRET_FIELDS = {"secret"}


def _safe(data: Any) -> dict[str, Any]:
    return {k: (str(v) if not isinstance(v, int | float | bool | str | type(None) | list | dict) else v)
            for k, v in dict(data).items() if k not in _SECRET_FIELDS}


def save(serializer: Any, project: Project, actor: str, *, extra: dict[str, Any] | None = None) -> models.Model:
    """Save a validated serializer (create when it has no instance) and audit ``<model>.created|updated``.

    ``extra`` are fields the caller sets rather than the input (a new policy's project).
    """
    created = serializer.instance is None
    with transaction.atomic():
        instance: models.Model = serializer.save(**(extra or {}))
        audit.append(project, actor, f"{instance._meta.model_name}.{'created' if created else 'updated'}",
                     str(instance), data=_safe(serializer.data))
    return instance


def delete(instance: models.Model, project: Project, actor: str) -> None:
    with transaction.atomic():
        audit.append(project, actor, f"{instance._meta.model_name}.deleted", str(instance), data={"id": instance.pk})
        instance.delete()
