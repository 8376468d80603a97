"""The production files in deploy/ (Docker cannot run here): they parse and point at real commands and settings."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from django.core.management import get_commands

from tests.support import ROOT

DEPLOY = ROOT / "deploy"


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_runs_the_production_topology_with_real_commands() -> None:
    services = _compose()["services"]
    assert {"clickhouse", "postgres", "redis", "migrate", "web", "worker", "beat"} <= set(services)
    assert services["worker"]["command"][:4] == ["celery", "-A", "controlplane", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "controlplane", "beat"]
    assert services["web"]["command"][:2] == ["uvicorn", "controlplane.asgi:application"]
    assert "replicas" in services["web"]["deploy"]
    for part in ("controlplane/asgi.py", "controlplane/celery.py", "manage.py"):
        assert (ROOT / part).exists(), part
    migrate = " ".join(services["migrate"]["command"])
    for command in re.findall(r"manage\.py (\w+)", migrate):
        assert command in get_commands(), command


def test_compose_environment_uses_variables_keel_reads() -> None:
    env = _compose()["x-keel-env"]
    settings_source = "\n".join(p.read_text() for p in (ROOT / "controlplane" / "settings").glob("*.py"))
    for name in env:
        assert f'"{name}"' in settings_source, f"{name} is not read by controlplane/settings"
    assert env["KEEL_MODE"] == "production"
    assert env["KEEL_CLICKHOUSE_URL"].startswith("http://") and env["CELERY_BROKER_URL"].startswith("redis://")
    assert env["KEEL_REDIS_URL"].startswith("redis://") and env["DATABASE_URL"].startswith("postgres://")


def test_collector_has_both_patterns_wired() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    pipelines = config["service"]["pipelines"]
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline.get(kind, []):
                assert name in config[kind], f"{name} is used but not defined"
    via_keel = pipelines["traces/via-keel"]
    assert via_keel["exporters"] == ["otlphttp/keel"]
    assert config["exporters"]["otlphttp/keel"]["headers"]["Authorization"].startswith("Bearer ")
    direct = pipelines["traces/direct"]
    assert direct["exporters"] == ["clickhouse"]
    clickhouse = config["exporters"]["clickhouse"]
    assert clickhouse["create_schema"] is False and clickhouse["traces_table_name"] == "otel_traces"
    resource = config["processors"]["resource/keel-project"]["attributes"]
    assert [a["key"] for a in resource] == ["keel.project_id"]
    assert "resource/keel-project" in direct["processors"]
    receivers = {config["receivers"][r]["protocols"]["http"]["endpoint"] for p in pipelines.values()
                 for r in p["receivers"]}
    assert len(receivers) == 2, "each pattern listens on its own port so no span is stored twice"


def test_clickhouse_config_keeps_system_logs_short_and_memory_capped() -> None:
    config = ET.parse(DEPLOY / "clickhouse" / "config.d" / "keel.xml").getroot()  # noqa: S314 (our own file)
    kept = [el for el in config if el.tag.endswith("_log") and el.get("remove") != "1"]
    assert kept, "some system logs stay on"
    for log in kept:
        ttl = log.findtext("ttl") or ""
        assert re.fullmatch(r"event_date \+ INTERVAL \d+ DAY DELETE", ttl), f"{log.tag} has no TTL"
    assert {"trace_log", "metric_log", "asynchronous_metric_log", "text_log"} <= {
        el.tag for el in config if el.get("remove") == "1"}
    assert float(config.findtext("max_server_memory_usage_to_ram_ratio") or 1) <= 0.75
    users = ET.parse(DEPLOY / "clickhouse" / "users.d" / "keel.xml").getroot()  # noqa: S314
    assert int(users.findtext("profiles/default/max_memory_usage") or 0) > 0


def test_dockerfile_installs_keel_and_serves_the_asgi_app() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "pip install" in dockerfile and "controlplane.asgi:application" in dockerfile
    for copied in re.findall(r"^COPY (\S+) ", dockerfile, flags=re.MULTILINE):
        assert (ROOT / copied).exists(), copied
    assert Path(ROOT / "pyproject.toml").exists()
