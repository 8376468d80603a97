"""Test set-up: a throwaway var/ (SQLite + chDB) per run, the ClickHouse schema applied once, real services.

Isolation in ClickHouse is by tenant: every project created in a test gets a fresh random ``tenant_id``, so
tests never see each other's rows and nothing has to be truncated.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

REQUIRE_SERVICES = os.environ.get("KEEL_REQUIRE_SERVICES") == "1"
# LiteLLM (imported by the gateway tests) fetches its model price map from GitHub at import unless told to use the
# copy it ships: nothing in the suite may reach the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def service_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Fail (CI, KEEL_REQUIRE_SERVICES=1) or skip with the reason when a real service is not running."""
    if service_reachable(host, port):
        return
    message = f"{name} is not running on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} and KEEL_REQUIRE_SERVICES=1: start it (see README, Development).")
    pytest.skip(f"{message}; set KEEL_REQUIRE_SERVICES=1 to make this a failure")


@pytest.fixture(scope="session", autouse=True)
def clickhouse_schema(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> None:
    """Apply the ClickHouse migrations once per run, the way `make run` does."""
    from ingestion.clickhouse.migrator import migrate

    migrate(log=lambda _line: None)


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/15"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for Keel processes started by a test (shared with it, unlike SQLite); dropped
    afterwards even if a process still holds a connection."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"keel_reliability_{os.urandom(4).hex()}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def project(db: None):  # type: ignore[no-untyped-def]
    from controlplane.models import Project

    return Project.objects.create(slug=f"p-{os.urandom(4).hex()}", name="Test project")


@pytest.fixture
def ch():  # type: ignore[no-untyped-def]
    from ingestion.clickhouse.client import get_client

    return get_client()


_DB_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "live_server", "admin_client", "admin_user",
                "django_user_model", "project"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass (KEEL_DB_PASS=postgres) run only the tests that touch the Django database."""
    if os.environ.get("KEEL_DB_PASS") != "postgres":
        return
    selected, deselected = [], []
    for item in items:
        uses_db = bool(_DB_FIXTURES & set(getattr(item, "fixturenames", ()))) or item.get_closest_marker("django_db")
        (selected if uses_db and not item.get_closest_marker("browser") else deselected).append(item)
    config.hook.pytest_deselected(items=deselected)
    items[:] = selected
