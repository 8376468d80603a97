"""The embedded runtime's first-start state: an admin login and the ``demo`` project with an ingest key.

Secrets are generated once and kept under the var directory (mode 0600) so every restart prints the same
login and key; a key that was revoked, or a var directory whose database was wiped, gets a fresh one.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from controlplane.apikeys import issue_key, verify_key
from controlplane.models import Membership, Project, Role, Scope

ADMIN_USERNAME = "admin"
DEMO_SLUG = "demo"


@dataclass(frozen=True)
class AdminLogin:
    username: str
    password: str | None  # None when the stored password no longer matches (changed in the UI)


@dataclass(frozen=True)
class DemoProject:
    project: Project
    ingest_key: str
    created: bool


def _write_secret(path: Path, value: str) -> None:
    path.write_text(value)
    path.chmod(0o600)


def ensure_admin(var: Path) -> AdminLogin:
    """Create the ``admin`` superuser on first start; return its login (password from ``var/admin_password``)."""
    users = get_user_model()
    password_file = var / "admin_password"
    user = users.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        password = password_file.read_text().strip() if password_file.exists() else secrets.token_urlsafe(12)
        users.objects.create_superuser(ADMIN_USERNAME, email="", password=password)
        _write_secret(password_file, password)
        return AdminLogin(ADMIN_USERNAME, password)
    if password_file.exists():
        password = password_file.read_text().strip()
        return AdminLogin(ADMIN_USERNAME, password if user.check_password(password) else None)
    return AdminLogin(ADMIN_USERNAME, None)


def ensure_demo_project(var: Path, admin_username: str = ADMIN_USERNAME) -> DemoProject:
    """The ``demo`` project, the admin as its admin member, and a working ingest key kept in ``var/``."""
    key_file = var / "demo_ingest_key"
    with transaction.atomic():
        project, created = Project.objects.get_or_create(slug=DEMO_SLUG, defaults={"name": "Demo shop"})
        admin = get_user_model().objects.filter(username=admin_username).first()
        if admin is not None:
            Membership.objects.get_or_create(user=admin, project=project, defaults={"role": Role.ADMIN})
    stored = key_file.read_text().strip() if key_file.exists() else ""
    verified = verify_key(stored) if stored else None
    if verified is None or verified.project_id != project.pk:
        stored = issue_key(project, [Scope.INGEST], name="demo traffic").secret
        _write_secret(key_file, stored)
    return DemoProject(project, stored, created)


@dataclass
class BackfillState:
    """Progress of the demo's one-time history backfill, resumable across restarts (``var/demo_backfill.json``).

    History is filled newest chunk first (so the last day's charts fill within minutes), each chunk oldest
    minute first: ``[filled_from, end)`` is complete, and ``[chunk_start, chunk_done_until)`` of the chunk in
    progress (which ends at ``filled_from``).
    """

    path: Path
    tenant_id: str
    start: datetime
    end: datetime
    filled_from: datetime
    chunk_start: datetime
    chunk_done_until: datetime

    CHUNK = timedelta(hours=6)

    @property
    def complete(self) -> bool:
        return self.filled_from <= self.start

    @classmethod
    def load_or_plan(cls, var: Path, project: Project, days: float, now: datetime) -> BackfillState:
        path = var / "demo_backfill.json"
        if path.exists():
            data = json.loads(path.read_text())
            if data.get("tenant_id") == project.tenant_id:
                keys = ("start", "end", "filled_from", "chunk_start", "chunk_done_until")
                return cls(path, project.tenant_id, *(datetime.fromisoformat(data[k]) for k in keys))
        end = now.replace(second=0, microsecond=0)
        start = end - timedelta(days=days)
        state = cls(path, project.tenant_id, start, end, end, end, end)
        state.save()
        return state

    def next_chunk(self) -> tuple[datetime, datetime]:
        """The ``[from, to)`` range to send next (resuming the chunk in progress)."""
        if self.chunk_start >= self.filled_from:  # the previous chunk is done: plan the one before it
            self.chunk_start = max(self.start, self.filled_from - self.CHUNK)
            self.chunk_done_until = self.chunk_start
            self.save()
        return self.chunk_done_until, self.filled_from

    def progress(self, done_until: datetime) -> None:
        self.chunk_done_until = done_until
        if done_until >= self.filled_from:
            self.filled_from = self.chunk_start
        self.save()

    def save(self) -> None:
        data = {k: getattr(self, k).isoformat() for k in
                ("start", "end", "filled_from", "chunk_start", "chunk_done_until")}
        self.path.write_text(json.dumps({"tenant_id": self.tenant_id, **data,
                                         "saved_at": datetime.now(UTC).isoformat()}))
