"""The ClickHouse reads routing needs, each bound to one tenant: discovery, previews, timeline, verification, spend.

Every query object takes the project's ``tenant_id`` as a required argument and binds every value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.schema import CALLS_TABLE, ROLLUP_1H, ROLLUP_1M, quantiles_merge


def _run(sql: str, tenant_id: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    if not tenant_id:
        raise ValueError("a tenant id is required for every ClickHouse read")
    return [tuple(row) for row in get_client().query(sql, parameters={"tenant": tenant_id, **params}).result_rows]


@dataclass(frozen=True)
class SeenDeployment:
    environment: str
    route: str
    deployment_id: str
    provider: str
    response_model: str
    calls: int


def seen_deployments(tenant_id: str, since: datetime) -> list[SeenDeployment]:
    """Routes and deployments that served calls since ``since`` (for discovery)."""
    rows = _run(
        f"""SELECT Environment, Route, GatewayDeploymentId, any(Provider), any(ResponseModel), count()
        FROM {CALLS_TABLE} WHERE ProjectId = {{tenant:String}} AND Timestamp >= {{since:DateTime64(3)}}
          AND Route != ''
        GROUP BY Environment, Route, GatewayDeploymentId ORDER BY Route, GatewayDeploymentId LIMIT 5000""",
        tenant_id, {"since": since},
    )
    return [SeenDeployment(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows]


@dataclass(frozen=True)
class DeploymentStats:
    calls: int
    errors: int
    cost: float
    latency_p95_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def cost_per_call(self) -> float | None:
        return self.cost / self.calls if self.calls else None

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "errors": self.errors, "error_rate": self.error_rate, "cost": self.cost,
                "cost_per_call": self.cost_per_call, "latency_p95_ms": self.latency_p95_ms}


EMPTY_STATS = DeploymentStats(0, 0, 0.0, None)


def _stats(row: tuple[Any, ...] | None) -> DeploymentStats:
    if row is None or not row[0]:
        return EMPTY_STATS
    p95 = row[3][2] if row[3] else None
    return DeploymentStats(int(row[0]), int(row[1]), float(row[2]), float(p95) if p95 is not None else None)


def stats_by_model_version(tenant_id: str, route: str, environment: str, since: datetime) -> dict[str, DeploymentStats]:
    """Per ResponseModel over the hourly rollups (re-aggregated)."""
    rows = _run(
        f"""SELECT ResponseModel, sum(Calls), sum(Errors), sum(Cost), {quantiles_merge("LatencyQ")}
        FROM {ROLLUP_1H} WHERE ProjectId = {{tenant:String}} AND Route = {{route:String}}
          AND Environment = {{env:String}} AND Hour >= toStartOfHour({{since:DateTime}})
        GROUP BY ResponseModel""",
        tenant_id, {"route": route, "env": environment, "since": since},
    )
    return {r[0]: _stats((r[1], r[2], r[3], r[4])) for r in rows}


def stats_by_gateway_deployment(tenant_id: str, route: str, environment: str,
                                since: datetime) -> dict[str, DeploymentStats]:
    """Per gateway deployment id; rollups do not carry it, so this reads ``llm_calls`` over the bounded window."""
    rows = _run(
        f"""SELECT GatewayDeploymentId, count(), sum(IsError), sum(ifNull(TotalCost, 0)),
                   quantiles(0.5, 0.9, 0.95, 0.99)(DurationMs)
        FROM {CALLS_TABLE} WHERE ProjectId = {{tenant:String}} AND Route = {{route:String}}
          AND Environment = {{env:String}} AND Timestamp >= {{since:DateTime64(3)}} AND GatewayDeploymentId != ''
        GROUP BY GatewayDeploymentId""",
        tenant_id, {"route": route, "env": environment, "since": since},
    )
    return {r[0]: _stats((r[1], r[2], r[3], r[4])) for r in rows}


def route_stats_1m(tenant_id: str, route: str, environment: str,
                   since: datetime) -> tuple[DeploymentStats, datetime | None]:
    """Route-level stats from the per-minute rollups since ``since`` and the newest minute seen (staleness)."""
    rows = _run(
        f"""SELECT sum(Calls), sum(Errors), sum(Cost), {quantiles_merge("LatencyQ")}, max(Minute)
        FROM {ROLLUP_1M} WHERE ProjectId = {{tenant:String}} AND Route = {{route:String}}
          AND Environment = {{env:String}} AND Minute >= toStartOfMinute({{since:DateTime}})""",
        tenant_id, {"route": route, "env": environment, "since": since},
    )
    row = rows[0] if rows else None
    stats = _stats(row[:4] if row else None)
    newest = row[4] if row and stats.calls else None
    return stats, newest


def route_spend(tenant_id: str, route: str, environment: str, since: datetime) -> float:
    rows = _run(
        f"""SELECT sum(Cost) FROM {ROLLUP_1H} WHERE ProjectId = {{tenant:String}} AND Route = {{route:String}}
          AND Environment = {{env:String}} AND Hour >= toStartOfHour({{since:DateTime}})""",
        tenant_id, {"route": route, "env": environment, "since": since},
    )
    return float(rows[0][0] or 0) if rows else 0.0


def traffic_share_by_hour(tenant_id: str, route: str, environment: str, since: datetime,
                          until: datetime) -> list[tuple[datetime, str, int]]:
    """(hour, response model, calls) for the model-version timeline."""
    rows = _run(
        f"""SELECT Hour, ResponseModel, sum(Calls) FROM {ROLLUP_1H}
        WHERE ProjectId = {{tenant:String}} AND Route = {{route:String}} AND Environment = {{env:String}}
          AND Hour >= toStartOfHour({{since:DateTime}}) AND Hour <= {{until:DateTime}}
        GROUP BY Hour, ResponseModel ORDER BY Hour, ResponseModel""",
        tenant_id, {"route": route, "env": environment, "since": since, "until": until},
    )
    return [(r[0], r[1], int(r[2])) for r in rows]
