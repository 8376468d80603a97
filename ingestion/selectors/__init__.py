"""Tenant-scoped, parameter-bound ClickHouse reads behind the public API.

:class:`TenantQuery` is the one place these reads get their tenant: it refuses SQL that does not filter on
``ProjectId = {tenant:String}`` and binds the tenant itself, so no caller can forget or override it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingestion.clickhouse.client import get_client

TENANT_CLAUSE = "ProjectId = {tenant:String}"
_PLACEHOLDER = re.compile(r"\{(\w+):[^}]+\}")


class UnscopedQuery(ValueError):
    """A query was built without the tenant filter, or tried to bind the tenant itself."""


@dataclass(frozen=True)
class TenantQuery:
    """Base of every API read: holds the caller's tenant; subclasses build SQL with placeholders only."""

    tenant_id: str

    def __post_init__(self) -> None:
        if not self.tenant_id:
            raise UnscopedQuery("a ClickHouse read needs the project's tenant id")

    def rows(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        if TENANT_CLAUSE not in sql:
            raise UnscopedQuery(f"query does not filter on {TENANT_CLAUSE}")
        if "tenant" in parameters:
            raise UnscopedQuery("the tenant parameter is bound by TenantQuery, not by callers")
        missing = set(_PLACEHOLDER.findall(sql)) - set(parameters) - {"tenant"}
        if missing:
            raise UnscopedQuery(f"unbound parameters: {sorted(missing)}")
        result = get_client().query(sql, parameters={**parameters, "tenant": self.tenant_id})
        return [tuple(r) for r in result.result_rows]


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch (naive datetimes are UTC); bound as Int64 to avoid time-zone guessing."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def from_ns(ns: int) -> datetime:
    seconds, rest = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1000)
