"""Render DDL for one node (embedded or server) or for a cluster, from one definition per table.

Single node: table ``T`` with a ``*MergeTree`` engine. Cluster (``KEEL_CLICKHOUSE_CLUSTER``): ``T_local`` with a
``Replicated*MergeTree`` engine on every node plus a ``Distributed`` table ``T`` over them; every statement gets
``ON CLUSTER``; materialized views connect the local tables. Values are read at call time so tests can render
both modes.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Topology:
    cluster: str = ""
    database: str = "default"

    @classmethod
    def current(cls) -> Topology:
        from ingestion.clickhouse.client import database

        return cls(cluster=settings.KEEL_CLICKHOUSE_CLUSTER, database=database())

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER '{self.cluster}'" if self.cluster else ""

    def local(self, table: str) -> str:
        """Name of the table that stores rows (what MVs read from and write to)."""
        return f"{table}_local" if self.cluster else table

    def engine(self, kind: str, table: str, args: str = "") -> str:
        """``kind`` is '' (MergeTree), 'Replacing', 'Aggregating' …"""
        if not self.cluster:
            return f"{kind}MergeTree({args})"
        path = f"'/clickhouse/tables/{{shard}}/{self.database}/{table}_local', '{{replica}}'"
        return f"Replicated{kind}MergeTree({path}{', ' + args if args else ''})"

    def distributed(self, table: str, sharding_key: str = "rand()") -> list[str]:
        """In cluster mode, the Distributed table that reads and writes across shards."""
        if not self.cluster:
            return []
        return [
            f"CREATE TABLE IF NOT EXISTS {table}{self.on_cluster} AS {self.local(table)} "
            f"ENGINE = Distributed('{self.cluster}', '{self.database}', '{self.local(table)}', {sharding_key})"
        ]


def ttl_days(column_expr: str, days: int) -> str:
    return f"TTL toDateTime({column_expr}) + toIntervalDay({int(days)})"
