"""Django admin for projects, members and keys (routing models register themselves beside their module)."""

from __future__ import annotations

from django.contrib import admin

from controlplane.models import ApiKey, Membership, Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "content_capture", "client_cost_wins", "ingest_rate_limit", "created_at")
    readonly_fields = ("tenant_id",)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "project", "role")
    list_filter = ("role", "project")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued through the UI/API/CLI (the secret is shown once); the admin can only inspect them."""

    list_display = ("prefix", "project", "name", "scopes", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("project", "prefix", "key_hash", "scopes", "created_at", "created_by", "last_used_at")

    def has_add_permission(self, request: object) -> bool:
        return False


from controlplane.routing import admin as _routing_admin  # noqa: E402,F401  (registers routes, revisions, audit)
