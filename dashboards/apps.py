from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "dashboards"
    verbose_name = "Keel dashboards"
    default_auto_field = "django.db.models.BigAutoField"
