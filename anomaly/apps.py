from django.apps import AppConfig


class AnomalyConfig(AppConfig):
    name = "anomaly"
    verbose_name = "Keel anomaly detection"
    default_auto_field = "django.db.models.BigAutoField"
