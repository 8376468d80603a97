from django.contrib import admin

from dashboards.models import ServiceLevelObjective


@admin.register(ServiceLevelObjective)
class ServiceLevelObjectiveAdmin(admin.ModelAdmin):
    list_display = ("project", "route", "metric", "threshold", "objective")
    list_filter = ("project", "metric")
