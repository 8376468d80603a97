"""`manage.py reprice --project SLUG --since … --until …`: recompute stored costs after a price change."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.models import Project
from ingestion.cost import reprice
from ingestion.prices import sync_prices


def parse_when(value: str) -> dt.datetime:
    """ISO date or date-time; naive values are UTC; returned as naive UTC (how ClickHouse compares them)."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"{value!r} is not an ISO date or date-time (e.g. 2026-11-01 or 2026-11-01T12:00Z)") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


class Command(BaseCommand):
    help = "Recompute the costs of one project's calls in [since, until) from the raw spans (widened to hours)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--since", required=True, help="Start (inclusive), ISO date or date-time, UTC.")
        parser.add_argument("--until", required=True, help="End (exclusive), ISO date or date-time, UTC.")
        parser.add_argument("--no-sync", action="store_true", help="Do not push the Django price list first.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        since, until = parse_when(options["since"]), parse_when(options["until"])
        if until <= since:
            raise CommandError("--until must be after --since")
        if not options["no_sync"]:
            sync_prices()
        result = reprice(project.tenant_id, since, until)
        self.stdout.write(
            f"repriced {result.calls} calls of {project.slug} in [{result.since:%Y-%m-%d %H:%M}, "
            f"{result.until:%Y-%m-%d %H:%M}) UTC: cost {result.cost_before:.6f} -> {result.cost_after:.6f} USD"
        )
