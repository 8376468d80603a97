"""``manage.py serve``: the one command that runs Keel (see controlplane.runtime.server)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from controlplane.runtime.server import ServeOptions, serve


class Command(BaseCommand):
    help = "Serve Keel (HTTP + WebSocket); embedded mode also runs the Celery worker, beat and the demo traffic."
    requires_system_checks: list[str] = []  # checks run once inside serve, after the store is locked
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--demo", action="store_true", default=True, help="demo project + simulated traffic")
        parser.add_argument("--no-demo", dest="demo", action="store_false", help="no demo project, no traffic")
        parser.add_argument("--seed", type=int, default=7, help="demo traffic seed (incident schedule)")
        parser.add_argument("--rate", type=float, default=0.5, help="demo calls per second")
        parser.add_argument("--backfill-days", type=float, default=7.0, help="demo history on first start")
        parser.add_argument("--concurrency", type=int, default=2, help="embedded Celery worker threads")

    def handle(self, *args: Any, **options: Any) -> None:
        self.check()
        try:
            code = serve(ServeOptions(
                host=options["host"], port=options["port"], demo=options["demo"], seed=options["seed"],
                rate=options["rate"], backfill_days=options["backfill_days"],
                workers_concurrency=options["concurrency"], out=self.stdout,
            ))
        except KeyboardInterrupt:  # Ctrl-C during start-up (migrations), before the server took over signals
            self.stderr.write("keel: interrupted during start-up; nothing was served")
            raise SystemExit(130) from None
        if code:
            raise SystemExit(code)
