"""Django admin for routing. Revisions and the audit log are read-only here: revisions are immutable and the audit
log is append-only (the models refuse changes too; the admin simply offers none)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from controlplane.models import (
    Action,
    AuditEntry,
    Budget,
    Deployment,
    GatewayAdapter,
    GatewaySync,
    Policy,
    Route,
    RouteRevision,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "project", "actor", "event", "route_name", "action_id", "alert_id", "summary")
    list_filter = ("event", "project")
    search_fields = ("summary", "actor", "route_name")


@admin.register(RouteRevision)
class RouteRevisionAdmin(ReadOnlyAdmin):
    list_display = ("route", "number", "is_active", "weights", "paused", "created_by", "created_at")


@admin.register(Action)
class ActionAdmin(ReadOnlyAdmin):
    """Actions change only through the routing services (which push, activate and audit)."""

    list_display = ("created_at", "route", "kind", "state", "actor", "alert_id", "automatic")
    list_filter = ("kind", "state", "automatic")


@admin.register(GatewaySync)
class GatewaySyncAdmin(ReadOnlyAdmin):
    list_display = ("at", "adapter", "action", "ok", "duration_ms", "error")


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ("name", "environment", "project", "version", "discovered")
    readonly_fields = ("version",)


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("gateway_id", "route", "provider", "model", "model_version", "healthy")


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "enabled", "detector", "route", "action", "mode")


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("route", "period", "limit_usd", "on_exceed", "enabled")


@admin.register(GatewayAdapter)
class GatewayAdapterAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "kind", "url", "enabled")
    exclude = ("secret",)
