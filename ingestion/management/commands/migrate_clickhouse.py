from typing import Any

from django.core.management.base import BaseCommand

from ingestion.clickhouse.client import check_startup
from ingestion.clickhouse.migrator import migrate


class Command(BaseCommand):
    help = "Apply pending ClickHouse migrations (numbered, forward-only, idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        check_startup()
        applied = migrate(log=lambda line: self.stdout.write(line))
        if not applied:
            self.stdout.write("ClickHouse schema is up to date.")
