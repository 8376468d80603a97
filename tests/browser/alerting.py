"""Raise an alert the way a detector run does: an ``Observation`` handed to ``anomaly.alerts.observe`` (the
alert lifecycle's one write path), with evidence points taken from the project's real rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dashboards.filters import Filters
from dashboards.queries import rollups
from dashboards.queries.scope import P95, Scope


def raise_alert_by_detector_run(project: Any, route: str = "chat") -> Any:
    from anomaly import alerts

    now = datetime.now(UTC)
    start = now - timedelta(hours=6)
    scope = Scope(project.tenant_id, Filters(start=start, end=now, range_key="6h", values={"route": route}))
    series = [p for p in rollups.series(scope) if p.latency[P95] is not None]
    assert series, "the alert's evidence needs traffic on the route"
    expected = sorted(p.latency[P95] for p in series)[len(series) // 4]  # a quiet-period level as the baseline
    points = [[p.bucket.timestamp(), p.latency[P95], expected, expected * 0.8, expected * 1.2] for p in series]
    observation = alerts.Observation(
        project=project, detector="latency_p95", series_key={"route": route}, title=f"Latency p95 up on {route}",
        score=9.0, episode_started_at=series[0].bucket, metric="latency_p95_ms", method="seasonal_robust",
        window_start=series[0].bucket, window_end=now, observed=series[-1].latency[P95], expected=expected,
        lower=expected * 0.8, upper=expected * 1.2, points=points,
    )
    alert = alerts.observe(observation, now=now)
    assert alert is not None
    return alert
