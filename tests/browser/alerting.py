"""Raise an alert the way production does: traffic whose latency steps up, then a real detector sweep
(``anomaly.sweep.sweep_project``), which hands its episode to the alert service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

DAYS = 2
MINUTES = DAYS * 1440
STEP_AT = MINUTES - 30
ROUTE = "support"


def _latency(minute: int) -> float:
    return 2400.0 if minute >= STEP_AT else 800.0


def raise_alert_by_detector_run(project: Any) -> Any:
    """Two days of a ``support`` route whose last 30 minutes are three times slower, then one sweep."""
    from anomaly import sweep
    from anomaly.models import Alert
    from ingestion.clickhouse.client import get_client
    from tests.alerts.traffic import insert, spans

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = (now - timedelta(minutes=MINUTES)).replace(tzinfo=None)
    insert(get_client(), spans(project.tenant_id, route=ROUTE, model="gpt-a", minutes=range(MINUTES),
                               latency_ms=_latency, start=start, seed=1))
    report = sweep.sweep_project(project, now=now)
    assert report.failures == [], report.failures
    # Other routes of the project may already be firing, so this alert can join their incident (one page).
    alert = Alert.objects.filter(project=project, route=ROUTE, detector="latency_p95").order_by("id").first()
    assert alert is not None, f"the sweep raised no latency alert on {ROUTE}: {report}"
    return alert
