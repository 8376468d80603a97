"""Every documented environment variable is read, and bad configuration stops start-up with one sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, manage

DUMP = (
    "import json, django; from django.conf import settings as s; django.setup(); "
    "print(json.dumps({'ch': s.KEEL_CLICKHOUSE_URL, 'cluster': s.KEEL_CLICKHOUSE_CLUSTER, "
    "'db': s.DATABASES['default']['ENGINE'], 'db_name': s.DATABASES['default']['NAME'], "
    "'db_host': s.DATABASES['default'].get('HOST'), 'broker': s.CELERY_BROKER_URL, "
    "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'layer_hosts': s.CHANNEL_LAYERS['default'].get('CONFIG'), "
    "'secret': s.SECRET_KEY, 'hosts': s.ALLOWED_HOSTS, 'debug': s.DEBUG, 'mode': s.KEEL_MODE, "
    "'raw_ttl': s.KEEL_RAW_TTL_DAYS, 'rollup_ttl': s.KEEL_ROLLUP_TTL_DAYS, 'content_ttl': s.KEEL_CONTENT_TTL_DAYS, "
    "'broker_options': s.CELERY_BROKER_TRANSPORT_OPTIONS, 'conn_max_age': s.DATABASES['default']['CONN_MAX_AGE']}))"
)


def _settings(env: dict[str, str]) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "DJANGO_"))}
    for name in ("DATABASE_URL", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "CELERY_BROKER_URL"):
        clean.pop(name, None)
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
    out = subprocess.run([sys.executable, "-c", DUMP], cwd=ROOT, env=clean, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_embedded_defaults(tmp_path: Path) -> None:
    s = _settings({"KEEL_VAR_DIR": str(tmp_path)})
    assert s["ch"] == f"chdb://{tmp_path}/clickhouse"
    assert s["cluster"] == ""
    assert s["db"] == "django.db.backends.sqlite3" and s["db_name"] == str(tmp_path / "keel.sqlite3")
    assert s["broker"] == "memory://"
    assert s["layer"] == "channels.layers.InMemoryChannelLayer"
    assert s["mode"] == "embedded" and s["debug"] is False
    assert s["broker_options"] == {"visibility_timeout": 600, "unacked_restore_interval": 10,
                                   "unacked_restore_throttle": 10}
    # The generated secret key is kept under var/ and reused on the next start.
    assert s["secret"] == (tmp_path / "secret_key").read_text().strip() and len(str(s["secret"])) >= 50
    assert _settings({"KEEL_VAR_DIR": str(tmp_path)})["secret"] == s["secret"]


def test_production_variables(tmp_path: Path) -> None:
    s = _settings({
        "KEEL_VAR_DIR": str(tmp_path),
        "KEEL_MODE": "production",
        "KEEL_CLICKHOUSE_URL": "https://keel:pw@ch.internal:8443/keel",
        "KEEL_CLICKHOUSE_CLUSTER": "main",
        "DATABASE_URL": "postgres://keel:pw@db.internal:5432/keel",
        "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
        "KEEL_REDIS_URL": "redis://redis.internal:6379/1",
        "SECRET_KEY": "x" * 60,
        "ALLOWED_HOSTS": "keel.example.com, keel-internal",
        "DEBUG": "false",
        "KEEL_RAW_TTL_DAYS": "7",
        "KEEL_ROLLUP_TTL_DAYS": "800",
        "KEEL_CONTENT_TTL_DAYS": "3",
        "KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS": "30",
    })
    assert s["ch"] == "https://keel:pw@ch.internal:8443/keel" and s["cluster"] == "main"
    assert s["db"] == "django.db.backends.postgresql" and s["db_host"] == "db.internal"
    assert s["conn_max_age"] == 0  # under ASGI a persistent connection would be stranded in the request's thread
    assert s["broker"] == "redis://redis.internal:6379/0"
    assert s["layer"] == "channels_redis.core.RedisChannelLayer"
    assert s["layer_hosts"] == {"hosts": ["redis://redis.internal:6379/1"]}
    assert s["secret"] == "x" * 60 and s["hosts"] == ["keel.example.com", "keel-internal"]
    assert (s["raw_ttl"], s["rollup_ttl"], s["content_ttl"]) == (7, 800, 3)
    assert s["broker_options"] == {"visibility_timeout": 30, "unacked_restore_interval": 10,
                                   "unacked_restore_throttle": 1}


def test_clickhouse_url_parsing() -> None:
    from ingestion.clickhouse.client import parse_url

    server = parse_url("http://user:p%40ss@ch:8123/analytics")
    assert (server.embedded, server.host, server.port, server.username, server.password, server.database) == (
        False, "ch", 8123, "user", "p@ss", "analytics")
    assert parse_url("https://ch").port == 8443
    assert parse_url("chdb:///srv/keel/ch").path == "/srv/keel/ch"


def _one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_production_secret_key_is_one_sentence(tmp_path: Path) -> None:
    line = _one_sentence(manage("check", env={"KEEL_VAR_DIR": str(tmp_path), "KEEL_MODE": "production",
                                              "ALLOWED_HOSTS": "x"}))
    assert line.startswith("keel: SECRET_KEY is not set") and "KEEL_MODE=production" in line


def test_zero_broker_visibility_timeout_is_one_sentence(tmp_path: Path) -> None:
    line = _one_sentence(manage("check", env={"KEEL_VAR_DIR": str(tmp_path),
                                              "KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS": "0"}))
    assert line == "keel: KEEL_BROKER_VISIBILITY_TIMEOUT_SECONDS=0 must be at least 1 second."


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://nope", "KEEL_CLICKHOUSE_URL='mysql://nope' is not understood"),
        ("chdb://relative/dir", "needs an absolute directory"),
        ("http://127.0.0.1:1/keel", "is not reachable"),
    ],
)
def test_bad_clickhouse_url_is_one_sentence(tmp_path: Path, url: str, expected: str) -> None:
    line = _one_sentence(manage("migrate_clickhouse", env={"KEEL_VAR_DIR": str(tmp_path), "KEEL_CLICKHOUSE_URL": url}))
    assert expected in line and "KEEL_CLICKHOUSE_URL" in line


def test_locked_embedded_store_names_the_owner_pid(tmp_path: Path) -> None:
    env = {"KEEL_VAR_DIR": str(tmp_path)}
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, time, django; os.environ['DJANGO_SETTINGS_MODULE']='controlplane.settings'; "
         "django.setup(); from ingestion.clickhouse.client import get_client; get_client().query('SELECT 1'); "
         "print('ready', flush=True); time.sleep(60)"],
        cwd=ROOT, env={**{k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}, **env},
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        line = _one_sentence(manage("migrate_clickhouse", env=env))
        assert f"in use by another Keel process (PID {holder.pid})" in line
    finally:
        holder.kill()
        holder.wait()


def test_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={
        "KEEL_VAR_DIR": str(tmp_path), "KEEL_MODE": "production", "SECRET_KEY": "k" * 10 + "Zq8#vT2!pL9@" * 5,
        "ALLOWED_HOSTS": "keel.example.com",
    })
    assert result.returncode == 0, result.stdout + result.stderr
