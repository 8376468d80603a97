"""Django database and ClickHouse: embedded files by default, servers when URLs are given."""

from __future__ import annotations

import dj_database_url

from .env import StartupError, get_int, get_str, var_dir

_VAR = var_dir()

DATABASE_URL = get_str("DATABASE_URL", f"sqlite:///{_VAR / 'keel.sqlite3'}")
try:
    # No persistent connections: under ASGI every request runs its sync code in a thread that ends with the request,
    # so a kept-open connection would be stranded there (one leaked PostgreSQL session per request until garbage
    # collection; Django's docs say to disable them under ASGI). Closed at the end of each request and Celery task.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
except ValueError as exc:
    raise StartupError(
        f"DATABASE_URL is not a valid database URL ({exc}): use postgres://user:pass@host:5432/db."
    ) from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite is shared by the web thread, the Celery threads and the simulator in one process.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["TEST"] = {"NAME": str(_VAR / "test-keel.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ClickHouse: chdb:///abs/dir (embedded, one process owns the directory) or http(s)://user:pass@host:8123/db.
KEEL_CLICKHOUSE_URL = get_str("KEEL_CLICKHOUSE_URL", f"chdb://{_VAR / 'clickhouse'}")
# Optional cluster name: every DDL gets ON CLUSTER, tables become Replicated* behind Distributed tables.
KEEL_CLICKHOUSE_CLUSTER = get_str("KEEL_CLICKHOUSE_CLUSTER", "")
# Retention (days): raw spans and message content are kept shorter than the per-minute and hourly rollups.
KEEL_RAW_TTL_DAYS = get_int("KEEL_RAW_TTL_DAYS", 30)
KEEL_CONTENT_TTL_DAYS = get_int("KEEL_CONTENT_TTL_DAYS", 14)
KEEL_ROLLUP_TTL_DAYS = get_int("KEEL_ROLLUP_TTL_DAYS", 400)
for _name, _value in (
    ("KEEL_RAW_TTL_DAYS", KEEL_RAW_TTL_DAYS),
    ("KEEL_CONTENT_TTL_DAYS", KEEL_CONTENT_TTL_DAYS),
    ("KEEL_ROLLUP_TTL_DAYS", KEEL_ROLLUP_TTL_DAYS),
):
    if _value < 1:
        raise StartupError(f"{_name}={_value} must be at least 1 day.")
