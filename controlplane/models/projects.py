"""Projects (the tenant), their members with roles, and their API keys."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


def _new_tenant_id() -> str:
    return uuid.uuid4().hex


class ContentCapture(models.TextChoices):
    NONE = "none", "Do not store message content"
    REDACTED = "redacted", "Store content with PII redacted"
    FULL = "full", "Store content as sent"


class Project(models.Model):
    """A tenant. ``tenant_id`` is what ClickHouse rows carry (never reused, unlike an autoincrement)."""

    tenant_id = models.CharField(max_length=32, unique=True, default=_new_tenant_id, editable=False)
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    content_capture = models.CharField(max_length=16, choices=ContentCapture.choices, default=ContentCapture.REDACTED)
    pii_extra_patterns = models.JSONField(default=list, blank=True, help_text="Extra regexes redacted as [CUSTOM].")
    client_cost_wins = models.BooleanField(default=True, help_text="Cost reported on the span beats the price table.")
    ingest_rate_limit = models.PositiveIntegerField(default=0, help_text="Spans per second; 0 = unlimited.")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    ONCALL = "oncall", "On-call"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 0, Role.ONCALL: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="one_membership_per_project")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.project} ({self.role})"

    def allows(self, needed: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(needed)]


class Scope(models.TextChoices):
    INGEST = "ingest", "Send OTLP data"
    READ = "read", "Read data and configuration"
    ADMIN = "admin", "Read, act and administer"


class ApiKey(models.Model):
    """A project key: ``keel_<prefix>_<secret>``; only the SHA-256 of the whole key is stored."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"keel_{self.prefix}_… ({', '.join(self.scopes)})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None
