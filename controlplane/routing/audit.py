"""The append-only audit log: one ``append`` used by every write path, and CSV/JSON export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet

from controlplane.models import AuditEntry, Project

EXPORT_FIELDS = ["id", "at", "actor", "event", "route_name", "route_id", "action_id", "alert_id", "summary", "data"]


def append(project: Project, actor: str, event: str, summary: str = "", *, route: Any = None,
           action_id: int | None = None, alert_id: int | None = None, data: dict[str, Any] | None = None) -> AuditEntry:
    return AuditEntry.objects.create(
        project=project, actor=actor[:200], event=event, summary=summary[:500],
        route_name=str(route) if route is not None else "", route_id=getattr(route, "pk", None),
        action_id=action_id, alert_id=alert_id, data=data or {},
    )


def entries(project: Project) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(project=project).order_by("-at", "-id")


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.pk, "at": entry.at.isoformat(), "actor": entry.actor, "event": entry.event,
            "route_name": entry.route_name, "route_id": entry.route_id, "action_id": entry.action_id,
            "alert_id": entry.alert_id, "summary": entry.summary, "data": entry.data}


def export_json(rows: Iterable[AuditEntry]) -> str:
    return json.dumps([_row(e) for e in rows], default=str)


def export_csv(rows: Iterable[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for entry in rows:
        row = _row(entry)
        row["data"] = json.dumps(row["data"], sort_keys=True, default=str)
        writer.writerow(row)
    return out.getvalue()
