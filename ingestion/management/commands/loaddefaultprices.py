"""`manage.py loaddefaultprices [--replace]`: load Keel's dated default price list and sync it to ClickHouse."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ingestion.prices import DEFAULT_PRICES_FILE, load_default_prices


class Command(BaseCommand):
    help = "Load the shipped default price list (existing rows are kept unless --replace) and sync ClickHouse."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--replace", action="store_true", help="Overwrite rows with the same provider/model/date.")

    def handle(self, *args: Any, **options: Any) -> None:
        created, updated = load_default_prices(DEFAULT_PRICES_FILE, replace=options["replace"])
        self.stdout.write(f"default prices: {created} created, {updated} updated, synced to ClickHouse")
