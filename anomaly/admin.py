"""Admin views: read-mostly for alerts (state changes belong to ``anomaly.alerts``), editable settings."""

from __future__ import annotations

from django.contrib import admin

from anomaly.models import (
    Alert,
    AlertTransition,
    Detection,
    DetectorConfig,
    NotificationAttempt,
    NotificationChannel,
    Silence,
)


@admin.register(DetectorConfig)
class DetectorConfigAdmin(admin.ModelAdmin):
    list_display = ["project", "kind", "enabled", "sensitivity", "min_calls", "cooldown_minutes", "renotify_minutes"]
    list_filter = ["kind", "enabled", "project"]
    list_editable = ["enabled", "sensitivity"]


class TransitionInline(admin.TabularInline):
    model = AlertTransition
    extra = 0
    can_delete = False
    readonly_fields = ["at", "action", "from_state", "to_state", "actor", "reason"]


class DetectionInline(admin.TabularInline):
    model = Detection
    extra = 0
    can_delete = False
    fields = ("created_at", "method", "metric", "observed", "expected", "lower", "upper", "score", "p_value")
    readonly_fields = fields


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["title", "project", "detector", "route", "state", "severity", "opened_at", "resolved_at"]
    list_filter = ["state", "severity", "detector", "project"]
    search_fields = ["title", "route", "fingerprint"]
    inlines = [DetectionInline, TransitionInline]
    readonly_fields = [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ["project", "route", "detector", "severity", "starts_at", "ends_at", "is_maintenance"]
    list_filter = ["project", "is_maintenance"]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "enabled", "min_severity"]
    list_filter = ["kind", "enabled", "project"]


@admin.register(NotificationAttempt)
class NotificationAttemptAdmin(admin.ModelAdmin):
    list_display = ["alert", "channel", "event", "status", "attempts", "response_code", "next_retry_at"]
    list_filter = ["status", "event"]
    readonly_fields = [f.name for f in NotificationAttempt._meta.fields]
