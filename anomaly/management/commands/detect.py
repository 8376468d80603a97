"""``manage.py detect --csv FILE --metric …``: backtest the production detectors on a CSV, no server or database."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from anomaly.backtest import detect_lines
from anomaly.detectors import MetricKind

METRICS = ["latency", "error_rate", "cost", "tokens", "volume", "generic", *(
    m.value for m in MetricKind if m.value not in {"latency", "error_rate", "cost", "tokens", "volume", "generic"}
)]


def sensitivity_arg(text: str) -> str | float:
    if text in {"low", "medium", "high"}:
        return text
    try:
        value = float(text)
    except ValueError:
        raise CommandError(f"--sensitivity must be low, medium, high or a number in [0, 1], not {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise CommandError(f"--sensitivity must be within [0, 1], not {value}")
    return value


class Command(BaseCommand):
    help = "Read timestamp,value[,calls] rows and print one timestamp,score,alert line per row."
    requires_system_checks: list[str] = []  # a backtest touches neither the database nor ClickHouse

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--csv", required=True, help="CSV file ('-' for stdin)")
        parser.add_argument("--metric", required=True, choices=METRICS)
        parser.add_argument("--sensitivity", default="medium", help="low, medium, high or a number in [0, 1]")

    def handle(self, *args: Any, **options: Any) -> None:
        sensitivity = sensitivity_arg(str(options["sensitivity"]))
        path = options["csv"]
        try:
            source = sys.stdin if path == "-" else path
            lines = detect_lines(source, metric=options["metric"], sensitivity=sensitivity)  # type: ignore[arg-type]
        except FileNotFoundError:
            raise CommandError(f"no such file: {path}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        for line in lines:
            self.stdout.write(line)
