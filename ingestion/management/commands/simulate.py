"""``manage.py simulate``: send realistic AI traffic (real OTLP via the OpenTelemetry SDK) to any Keel URL."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingestion.simulator import Simulation, SimulationConfig, SimulatorError, parse_kinds


class Command(BaseCommand):
    help = "Send simulated LLM traffic (history backfill, live calls, scripted incidents) to Keel over OTLP/HTTP."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Keel's base URL")
        parser.add_argument("--key", default="", help="a project ingest key (keel_...); required to send")
        parser.add_argument("--seed", type=int, default=7, help="same seed, same incident schedule")
        parser.add_argument("--backfill-days", type=float, default=0.0, help="history to send first (days)")
        parser.add_argument("--rate", type=float, default=0.5, help="average calls per second")
        parser.add_argument("--duration", type=float, default=None,
                            help="seconds of live traffic (default: until Ctrl-C; 0 = backfill only)")
        parser.add_argument("--incidents", default="all", help="all | none | comma list of version,errors,prompt")
        parser.add_argument("--speed", type=float, default=1.0, help="incidents happen this many times sooner")
        parser.add_argument("--print-schedule", action="store_true",
                            help="print the incident schedule (JSON) for live traffic starting now, and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            kinds = parse_kinds(options["incidents"])
        except ValueError as exc:
            raise CommandError(f"--incidents: {exc}") from None
        if options["rate"] <= 0 or options["speed"] <= 0 or options["backfill_days"] < 0:
            raise CommandError("--rate and --speed must be positive and --backfill-days not negative")
        config = SimulationConfig(
            url=options["url"], key=options["key"], seed=options["seed"], rate=options["rate"],
            backfill_days=options["backfill_days"], duration_s=options["duration"], incidents=kinds,
            speed=options["speed"],
        )
        if not options["key"] and not options["print_schedule"]:
            raise CommandError("--key is required: a project ingest key (keel_...), e.g. from the `serve` banner")
        stop = threading.Event()
        simulation = Simulation(config, stop=stop, log=self.stdout.write)
        if options["print_schedule"]:
            config.cycles = 1
            schedule = simulation.schedule(datetime.now(UTC))
            self.stdout.write(json.dumps([i.as_dict() for i in schedule], indent=2))
            return
        try:
            simulation.probe()
            self.stdout.write(f"sending to {config.url} (seed {config.seed}, {config.rate:g} calls/s); Ctrl-C stops")
            simulation.run()
        except SimulatorError as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            stop.set()
        stats = simulation.stats
        self.stdout.write(f"sent {stats.backfilled} history spans and {stats.live} live spans")
