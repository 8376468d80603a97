"""The one write path from a Django Project's switches to ClickHouse's ``keel_projects`` / ``keel_project_dict``.

The insert path reads cost precedence, content capture and extra PII patterns from the dictionary, so every
Project save pushes a new versioned row here and reloads the dictionary at once (its LIFETIME only bounds
staleness for other nodes). ClickHouse is not part of the Django transaction: :func:`sync_all_projects` runs at
start-up (``migrate_clickhouse``/``serve``) to reconcile anything a crash or rollback left behind.
A deleted project is pushed with capture ``none`` so late spans for it keep no content.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from controlplane.models import Project
from ingestion import project_settings
from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.ddl import Topology
from ingestion.clickhouse.schema import PROJECTS_TABLE
from ingestion.redaction import CAPTURE_MODES, PROJECT_DICT, combined_extra_pattern, validate_extra_patterns

log = logging.getLogger(__name__)

COLUMNS = ["ProjectId", "client_cost_wins", "content_capture", "extra_pattern", "version"]

_version_lock = threading.Lock()
_last_version = 0


@dataclass(frozen=True)
class ProjectSwitches:
    """What ClickHouse needs to know about one project."""

    tenant_id: str
    client_cost_wins: bool
    content_capture: str
    extra_pattern: str

    @classmethod
    def of(cls, project: Project, *, deleted: bool = False) -> ProjectSwitches:
        mode = "none" if deleted else project.content_capture
        if mode not in CAPTURE_MODES:
            raise ValueError(f"content_capture must be one of {', '.join(CAPTURE_MODES)}, not {mode!r}.")
        patterns = [] if deleted else validate_extra_patterns(project.pii_extra_patterns)
        return cls(project.tenant_id, bool(project.client_cost_wins), mode, combined_extra_pattern(patterns))


def _next_version() -> int:
    """Strictly increasing within the process; nanoseconds keep order across processes."""
    global _last_version
    with _version_lock:
        _last_version = max(time.time_ns(), _last_version + 1)
        return _last_version


def push(switches: Iterable[ProjectSwitches]) -> int:
    """Insert one versioned row per project and reload the dictionary; returns the number of rows."""
    rows = [[s.tenant_id, int(s.client_cost_wins), s.content_capture, s.extra_pattern, _next_version()]
            for s in switches]
    if not rows:
        return 0
    client = get_client()
    client.insert(PROJECTS_TABLE, rows, column_names=COLUMNS)
    client.command(f"SYSTEM RELOAD DICTIONARY {PROJECT_DICT}{Topology.current().on_cluster}")
    return len(rows)


def sync_project(project: Project, *, deleted: bool = False) -> None:
    """Push one project's switches (validated) to ClickHouse."""
    push([ProjectSwitches.of(project, deleted=deleted)])
    project_settings.forget(project.tenant_id)


def sync_all_projects() -> int:
    """Push every project's switches (start-up reconciliation). Invalid stored patterns are skipped, not fatal."""
    switches: list[ProjectSwitches] = []
    for project in Project.objects.all().iterator():
        try:
            switches.append(ProjectSwitches.of(project))
        except ValueError as exc:
            log.error("project %s: extra PII patterns not synced: %s", project.slug, exc)
            switches.append(ProjectSwitches(project.tenant_id, project.client_cost_wins, project.content_capture, ""))
    return push(switches)


# --- signal receivers (connected in IngestionConfig.ready) ------------------------------------------------------


def _validate_before_save(sender: type[Project], instance: Project, **kwargs: object) -> None:
    from django.core.exceptions import ValidationError

    from ingestion.redaction import InvalidPattern

    try:
        instance.pii_extra_patterns = validate_extra_patterns(instance.pii_extra_patterns)
    except InvalidPattern as exc:
        raise ValidationError({"pii_extra_patterns": str(exc)}) from None
    if instance.content_capture not in CAPTURE_MODES:
        raise ValidationError({"content_capture": f"Must be one of {', '.join(CAPTURE_MODES)}."})


def _sync_after_save(sender: type[Project], instance: Project, raw: bool = False, **kwargs: object) -> None:
    if not raw:  # fixtures loading raw rows are reconciled by sync_all_projects()
        sync_project(instance)


def _sync_after_delete(sender: type[Project], instance: Project, **kwargs: object) -> None:
    sync_project(instance, deleted=True)


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save, pre_save

    pre_save.connect(_validate_before_save, sender=Project, dispatch_uid="keel_project_validate_patterns")
    post_save.connect(_sync_after_save, sender=Project, dispatch_uid="keel_project_sync")
    post_delete.connect(_sync_after_delete, sender=Project, dispatch_uid="keel_project_sync_delete")
