"""Numbered, forward-only ClickHouse migrations, recorded in ClickHouse itself.

A migration is a module ``NNNN_name.py`` in :mod:`ingestion.clickhouse.migrations` with a function
``operations(topology) -> list[str]``. Applied versions live in ``keel_schema_migrations``; applying twice is a
no-op. Statements use ``IF NOT EXISTS`` so a migration interrupted half-way can simply be run again.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from ingestion.clickhouse import migrations as migrations_pkg
from ingestion.clickhouse.client import get_client
from ingestion.clickhouse.ddl import Topology

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    operations: Callable[[Topology], list[str]]


def discover() -> list[Migration]:
    found: list[Migration] = []
    for info in pkgutil.iter_modules(migrations_pkg.__path__):
        match = _NAME.match(info.name)
        if not match:
            continue
        module: ModuleType = importlib.import_module(f"{migrations_pkg.__name__}.{info.name}")
        found.append(Migration(int(match.group(1)), match.group(2), module.operations))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate ClickHouse migration numbers: {versions}")
    return found


def _ledger_sql(topology: Topology) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {topology.local('keel_schema_migrations')}{topology.on_cluster} "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        f"ENGINE = {topology.engine('Replacing', 'keel_schema_migrations')} ORDER BY version",
        *topology.distributed("keel_schema_migrations"),
    ]


def applied_versions() -> set[int]:
    client = get_client()
    rows = client.query("SELECT DISTINCT version FROM keel_schema_migrations").result_rows
    return {int(r[0]) for r in rows}


def migrate(log: Callable[[str], None] = print, *, up_to: int | None = None) -> list[Migration]:
    """Apply pending migrations in order (only those numbered ``up_to`` or lower, when given); return them.

    ``up_to`` lets a test build the store as it was before a migration, to check what that migration does to
    existing data (a backfill).
    """
    topology = Topology.current()
    client = get_client()
    for sql in _ledger_sql(topology):
        client.command(sql)
    done = applied_versions()
    applied: list[Migration] = []
    for migration in discover():
        if migration.version in done or (up_to is not None and migration.version > up_to):
            continue
        for sql in migration.operations(topology):
            client.command(sql)
        client.insert(
            "keel_schema_migrations", [[migration.version, migration.name]], column_names=["version", "name"]
        )
        log(f"applied ClickHouse migration {migration.version:04d}_{migration.name}")
        applied.append(migration)
    return applied
