"""``manage.py detect-drift --csv FILE [--window N]``: print the 0-based row index of every drift alarm."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from anomaly.backtest import drift_lines


class Command(BaseCommand):
    help = "Scan rows of numeric or categorical columns in time order; print the row index of each drift alarm."
    requires_system_checks: list[str] = []  # a backtest touches neither the database nor ClickHouse

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--csv", required=True, help="CSV file ('-' for stdin)")
        parser.add_argument("--window", type=int, default=200, help="rows per reference/current window")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["window"] < 2:
            raise CommandError("--window must be at least 2")
        path = options["csv"]
        try:
            lines = drift_lines(sys.stdin if path == "-" else path, window=options["window"])
        except FileNotFoundError:
            raise CommandError(f"no such file: {path}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        for line in lines:
            self.stdout.write(line)
