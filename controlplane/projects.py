"""Write paths for projects and their members (used by the API, the settings pages and commands)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from controlplane.models import Membership, Project, Role
from ingestion.redaction import InvalidPattern, validate_extra_patterns

EDITABLE_SETTINGS = ("name", "content_capture", "client_cost_wins", "ingest_rate_limit", "pii_extra_patterns")


@transaction.atomic
def update_project(project: Project, changes: dict[str, Any]) -> Project:
    unknown = set(changes) - set(EDITABLE_SETTINGS)
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "is not an editable project setting"))
    if "pii_extra_patterns" in changes:
        # Checked by the engine that will run them (ClickHouse RE2), not Python's re.
        try:
            changes["pii_extra_patterns"] = validate_extra_patterns(changes["pii_extra_patterns"])
        except InvalidPattern as exc:
            raise ValidationError({"pii_extra_patterns": str(exc)}) from None
    for name, value in changes.items():
        setattr(project, name, value)
    project.full_clean()
    project.save()  # post_save hooks push the switches ClickHouse needs (ingestion.project_sync)
    return project


@transaction.atomic
def add_member(project: Project, username: str, role: str) -> Membership:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ValidationError({"username": f"no user named {username!r}"})
    if role not in Role.values:
        raise ValidationError({"role": f"must be one of {', '.join(Role.values)}"})
    membership, _ = Membership.objects.update_or_create(user=user, project=project, defaults={"role": role})
    return membership


@transaction.atomic
def change_role(membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"must be one of {', '.join(Role.values)}"})
    if membership.role == Role.ADMIN and role != Role.ADMIN and _last_admin(membership):
        raise ValidationError({"role": "the project's last admin cannot be demoted"})
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def remove_member(membership: Membership) -> None:
    if membership.role == Role.ADMIN and _last_admin(membership):
        raise ValidationError({"detail": "the project's last admin cannot be removed"})
    membership.delete()


def _last_admin(membership: Membership) -> bool:
    return not Membership.objects.filter(project=membership.project, role=Role.ADMIN).exclude(pk=membership.pk).exists()
