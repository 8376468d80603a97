from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Keel ingestion"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every Project create/update/delete pushes its switches to ClickHouse (one write path).
        from ingestion.project_sync import connect_signals

        connect_signals()
