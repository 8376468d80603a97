"""Keel's own Prometheus metrics and the ``/metrics`` view.

Other modules import the metric objects below and update them; nothing else creates metrics, so names and
labels stay consistent and low-cardinality (never a project, user or model in a label).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Ingestion (OTLP receiver and batch writer).
SPANS_RECEIVED = Counter("keel_spans_received", "Spans received on the OTLP endpoint.", registry=REGISTRY)
OTLP_REQUESTS = Counter("keel_otlp_requests", "OTLP requests answered, by signal and HTTP status.",
                        ["signal", "status"], registry=REGISTRY)
SPANS_STORED = Counter("keel_spans_stored", "Spans written to ClickHouse.", registry=REGISTRY)
SPANS_REJECTED = Counter(
    "keel_spans_rejected", "Spans refused, by reason (auth, rate_limit, too_large, malformed, unavailable, ...).",
    ["reason"], registry=REGISTRY,
)
INSERT_BATCH_ROWS = Histogram(
    "keel_insert_batch_rows", "Rows per ClickHouse insert batch.",
    buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000), registry=REGISTRY,
)
INSERT_SECONDS = Histogram(
    "keel_insert_seconds", "Latency of one ClickHouse insert batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY,
)
INSERT_FAILURES = Counter("keel_insert_failures", "ClickHouse insert batches that failed.", registry=REGISTRY)

# Celery tasks (filled from Celery signals, see connect_celery_signals).
TASK_RUNS = Counter("keel_task_runs", "Celery task executions, by task name.", ["task"], registry=REGISTRY)
TASK_FAILURES = Counter("keel_task_failures", "Celery task executions that raised, by task name.", ["task"],
                        registry=REGISTRY)
TASK_SECONDS = Histogram(
    "keel_task_seconds", "Celery task run time, by task name.", ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=REGISTRY,
)

# Alerts and remediation.
ALERTS = Counter("keel_alerts", "Alert state changes, by detector and event (opened, resolved, ...).",
                 ["detector", "event"], registry=REGISTRY)
NOTIFICATIONS = Counter("keel_notifications", "Notifications sent, by channel kind and outcome.",
                        ["channel", "outcome"], registry=REGISTRY)
ACTIONS = Counter("keel_actions", "Remediation actions, by kind (rollback, reroute, pause) and outcome.",
                  ["kind", "outcome"], registry=REGISTRY)

# Live UI.
WEBSOCKET_CLIENTS = Gauge("keel_websocket_clients", "Connected WebSocket clients.", registry=REGISTRY)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition of this process's metrics."""
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


_task_started: dict[str, float] = {}


def _task_prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _task_started[task_id] = time.perf_counter()


def _task_postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    name = getattr(task, "name", "unknown")
    TASK_RUNS.labels(name).inc()
    started = _task_started.pop(task_id or "", None)
    if started is not None:
        TASK_SECONDS.labels(name).observe(time.perf_counter() - started)


def _task_failure(sender: Any = None, **_: Any) -> None:
    TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()


def connect_celery_signals() -> None:
    """Count task runs, failures and durations in whatever process runs the worker."""
    from celery import signals

    signals.task_prerun.connect(_task_prerun, weak=False, dispatch_uid="keel-metrics-prerun")
    signals.task_postrun.connect(_task_postrun, weak=False, dispatch_uid="keel-metrics-postrun")
    signals.task_failure.connect(_task_failure, weak=False, dispatch_uid="keel-metrics-failure")


def install_worker_metrics_endpoint(app: Any) -> None:
    """``celery -A controlplane worker --metrics-port 9100``: serve this worker's metrics (production only).

    Task counters live in the process that runs the task, so use ``--pool threads`` (as deploy/ does) for one
    scrape target per worker; the embedded runtime needs none of this (its worker shares the web's /metrics).
    """
    import click

    from celery import bootsteps

    class MetricsEndpoint(bootsteps.StartStopStep):
        def __init__(self, parent: Any, metrics_port: int | None = None, **options: Any) -> None:
            super().__init__(parent, **options)
            self.port = metrics_port

        def start(self, parent: Any) -> None:
            if self.port:
                start_http_server(self.port, registry=REGISTRY)

    app.user_options["worker"].add(click.Option(
        ["--metrics-port"], type=int, default=None, help="Serve Prometheus metrics of this worker on this port."
    ))
    app.steps["worker"].add(MetricsEndpoint)
