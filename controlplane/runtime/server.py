"""``manage.py serve``: check the store, migrate, start workers and the web server, shut down without loss.

Embedded (``CELERY_BROKER_URL=memory://``): one process runs uvicorn, a Celery worker and beat as threads, and
optionally the demo traffic simulator. Production (Redis/RabbitMQ broker): the same command serves only the web
app; ``celery -A controlplane worker`` and ``celery -A controlplane beat`` run elsewhere.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import uvicorn

from django.conf import settings

from controlplane.runtime import shutdown
from controlplane.startup import StartupError

log = logging.getLogger("keel.runtime")


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    demo: bool = True
    seed: int = 7
    rate: float = 0.5
    backfill_days: float = 7.0
    workers_concurrency: int = 2
    graceful_timeout_s: int = 30
    out: Any = field(default=sys.stdout)


def embedded_broker() -> bool:
    return str(settings.CELERY_BROKER_URL).startswith("memory://")


def ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(
                f"Port {port} on {host} is not available ({exc.strerror}): stop whatever uses it or pick another "
                f"port (make run PORT=8001, or manage.py serve --port 8001)."
            ) from None


class _Server(uvicorn.Server):
    """uvicorn with a hook on the first Ctrl-C/SIGTERM, so producers (the simulator) stop with the server."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


def prepare_stores(out: Any) -> None:
    """Bring both schemas up to date and push every project's switches to ClickHouse."""
    from django.core.management import call_command

    from ingestion.clickhouse.migrator import migrate

    call_command("migrate", interactive=False, verbosity=0)
    migrate(log=lambda line: out.write(f"ClickHouse: {line}\n"))
    from ingestion.project_sync import sync_all_projects

    sync_all_projects()


def ensure_default_prices() -> None:
    """Load the shipped price list into an empty price table (never over an operator's edits)."""
    from ingestion.models import Price
    from ingestion.prices import load_default_prices

    if Price.objects.exists():
        return
    try:
        created, _updated = load_default_prices()
    except FileNotFoundError as exc:
        log.warning("no default price list to load (%s); costs stay unpriced until prices are added", exc)
    else:
        log.info("loaded %d default prices", created)


def _drain_ingest_writer() -> None:
    """Wait until the batch writer has written everything accepted (requests already got their answers)."""
    from ingestion import writer as ingest_writer

    # The writer answers each request only after its insert returned, so once the server has drained its
    # requests only work queued by timed-out requests can remain; wait for that too.
    current = ingest_writer.set_writer(None)  # only if this process ever created one
    if current is not None and not current.drain(timeout=30):
        log.warning("ingest writer still had queued records after 30 s")


def serve(options: ServeOptions) -> int:
    out = options.out
    embedded = embedded_broker()
    from ingestion.clickhouse.client import check_startup

    check_startup()  # first: a second `make run` must say the store is in use (and by whom), not "port busy"
    ensure_port_free(options.host, options.port)
    prepare_stores(out)
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)  # "no hostname" for memory://
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # the banner says where we listen

    from controlplane.runtime.banner import Banner

    banner = Banner(url=f"http://{_display_host(options.host)}:{options.port}", embedded=embedded)
    if not settings.PRODUCTION:
        from controlplane.demo import ensure_admin

        banner.admin = ensure_admin(_var())
    ensure_default_prices()

    demo = None
    if options.demo:
        from controlplane.demo import ensure_demo_project

        demo = ensure_demo_project(_var())
        banner.demo_key = demo.ingest_key
        banner.demo_project = demo.project.slug

    celery = None
    if embedded:
        from controlplane.celery import app
        from controlplane.runtime.celery_threads import EmbeddedCelery

        celery = EmbeddedCelery(app, _var(), concurrency=options.workers_concurrency)
        celery.start()

    stopping = threading.Event()
    config = uvicorn.Config(
        "controlplane.asgi:application", host=options.host, port=options.port, lifespan="off", log_config=None,
        access_log=False, timeout_graceful_shutdown=options.graceful_timeout_s, server_header=False,
    )
    server = _Server(config, stopping)
    shutdown.on_shutdown(_drain_ingest_writer, name="ingest-writer-drain", stage=shutdown.FLUSH)

    threads: list[threading.Thread] = []
    traffic = None
    announcer = threading.Thread(target=_announce_when_started, args=(server, banner, out), daemon=True)
    announcer.start()
    if demo is not None:
        from controlplane.runtime.demo_traffic import DemoTraffic

        traffic = DemoTraffic(
            url=f"http://{_connect_host(options.host)}:{options.port}", key=demo.ingest_key, project=demo.project,
            var=_var(), seed=options.seed, rate=options.rate, backfill_days=options.backfill_days, stop=stopping,
        )
        threads = traffic.start_when(lambda: server.started and not stopping.is_set())

    # Our handlers, not asyncio's/the default: uvicorn re-raises the signal it captured once it has stopped.
    signal.signal(signal.SIGINT, lambda _sig, _frame: stopping.set())
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stopping.set())
    server.run()  # returns after Ctrl-C/SIGTERM once in-flight requests finished
    stopping.set()
    signal.signal(signal.SIGINT, _force_exit)
    signal.signal(signal.SIGTERM, _force_exit)
    out.write("\nKeel is stopping: finishing in-flight work…\n")
    out.flush()
    if traffic is not None:
        traffic.interrupt()  # the server no longer accepts; don't let exports wait out their retries
    for thread in threads:
        thread.join(timeout=15)
    if celery is not None:
        celery.stop(timeout=options.graceful_timeout_s * 2)
    failed = shutdown.run_shutdown_hooks()
    if not server.started:
        return 1
    out.write("Keel stopped.\n" if not failed else f"Keel stopped; shutdown steps failed: {', '.join(failed)}\n")
    out.flush()
    return 0 if not failed else 1


def _force_exit(_sig: int, _frame: FrameType | None) -> None:
    sys.stderr.write("keel: second interrupt, exiting without waiting for in-flight work\n")
    os._exit(130)


def _var() -> Any:
    from controlplane.settings.env import var_dir

    return var_dir()


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in {"0.0.0.0", "::"} else (f"[{host}]" if ":" in host else host)  # noqa: S104


def _connect_host(host: str) -> str:
    return _display_host(host)


def _announce_when_started(server: uvicorn.Server, banner: Any, out: Any) -> None:
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    out.write(banner.render())
    out.flush()
