"""Parts of the embedded runtime that need no server: shutdown hooks, the banner, first-start demo state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.util.re import parse_env_headers

from celery import Celery

from controlplane.apikeys import revoke_key, verify_key
from controlplane.demo import BackfillState, ensure_admin, ensure_demo_project
from controlplane.models import ApiKey, Membership
from controlplane.runtime import shutdown
from controlplane.runtime.banner import Banner, otlp_env_lines
from controlplane.schedule import Periodic, setup_periodic_tasks


def test_shutdown_hooks_run_once_in_stage_order_and_survive_a_failure() -> None:
    ran: list[str] = []
    shutdown.on_shutdown(lambda: ran.append("close"), name="t-close", stage=shutdown.CLOSE)
    shutdown.on_shutdown(lambda: ran.append("flush-1"), name="t-flush-1")
    shutdown.on_shutdown(lambda: 1 / 0, name="t-broken")
    shutdown.on_shutdown(lambda: ran.append("flush-2"), name="t-flush-2")
    shutdown.on_shutdown(lambda: ran.append("stop"), name="t-stop", stage=shutdown.STOP_PRODUCERS)
    shutdown.on_shutdown(lambda: ran.append("flush-1-again"), name="t-flush-1")  # same name replaces
    assert shutdown.run_shutdown_hooks() == ["t-broken"]
    assert ran == ["stop", "flush-1-again", "flush-2", "close"]
    assert shutdown.run_shutdown_hooks() == []


def test_otlp_header_line_is_what_the_sdk_parses_back() -> None:
    key = "keel_0a1b2c3d4e5f_Ab-_9xyz"
    endpoint, headers = otlp_env_lines("http://127.0.0.1:8000", key)
    assert endpoint == "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:8000"
    name, _, value = headers.partition("=")
    assert name == "OTEL_EXPORTER_OTLP_HEADERS"
    assert parse_env_headers(value, liberal=True) == {"authorization": f"Bearer {key}"}


def test_beat_registry_reaches_celery() -> None:
    app = Celery("schedule-test", set_as_current=False)
    from controlplane import schedule

    schedule.SCHEDULE["t-rollup"] = Periodic("anomaly.tasks.scan", 60.0, kwargs={"window": 5}, expires_seconds=55)
    try:
        setup_periodic_tasks(app)
    finally:
        del schedule.SCHEDULE["t-rollup"]
    entry = app.conf.beat_schedule["t-rollup"]
    assert entry["task"] == "anomaly.tasks.scan" and entry["schedule"] == 60.0
    assert entry["kwargs"] == {"window": 5} and entry["options"]["expires"] == 55
    schedule.register("dup", Periodic("a", 1.0))
    try:
        with pytest.raises(ValueError, match="already registered"):
            schedule.register("dup", Periodic("b", 1.0))
    finally:
        del schedule.SCHEDULE["dup"]


@pytest.mark.django_db
def test_first_start_creates_admin_and_demo_and_restarts_reuse_them(tmp_path: Path) -> None:
    admin = ensure_admin(tmp_path)
    assert admin.password and (tmp_path / "admin_password").read_text() == admin.password
    assert (tmp_path / "admin_password").stat().st_mode & 0o777 == 0o600
    assert ensure_admin(tmp_path) == admin

    demo = ensure_demo_project(tmp_path)
    assert demo.created and demo.project.slug == "demo"
    verified = verify_key(demo.ingest_key)
    assert verified is not None and verified.project_id == demo.project.pk and verified.scopes == {"ingest"}
    assert Membership.objects.get(project=demo.project, user__username="admin").role == "admin"
    again = ensure_demo_project(tmp_path)
    assert not again.created and again.ingest_key == demo.ingest_key
    assert ApiKey.objects.filter(project=demo.project).count() == 1

    revoke_key(ApiKey.objects.get(project=demo.project))
    fresh = ensure_demo_project(tmp_path)
    assert fresh.ingest_key != demo.ingest_key and verify_key(fresh.ingest_key) is not None

    banner = Banner(url="http://127.0.0.1:8000", embedded=True, admin=admin, demo_project="demo",
                    demo_key=fresh.ingest_key).render()
    assert f"admin / {admin.password}" in banner
    assert f"OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20{fresh.ingest_key}" in banner.splitlines()


@pytest.mark.django_db
def test_backfill_fills_newest_chunk_first_and_resumes_mid_chunk(tmp_path: Path) -> None:
    demo = ensure_demo_project(tmp_path)
    now = datetime(2026, 5, 1, 12, 30, 15, tzinfo=UTC)
    state = BackfillState.load_or_plan(tmp_path, demo.project, 1, now)
    end = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    assert (state.start, state.end) == (end - timedelta(days=1), end) and not state.complete
    assert state.next_chunk() == (end - timedelta(hours=6), end)
    state.progress(end - timedelta(hours=5))  # an hour of the newest chunk sent, then a restart
    resumed = BackfillState.load_or_plan(tmp_path, demo.project, 1, now + timedelta(hours=1))
    assert resumed.next_chunk() == (end - timedelta(hours=5), end)
    resumed.progress(end)
    assert resumed.filled_from == end - timedelta(hours=6)
    sent: list[tuple[datetime, datetime]] = []
    while not resumed.complete:
        since, until = resumed.next_chunk()
        sent.append((since, until))
        resumed.progress(until)
    assert sent == [(end - timedelta(hours=h + 6), end - timedelta(hours=h)) for h in (6, 12, 18)]
    assert BackfillState.load_or_plan(tmp_path, demo.project, 1, now).complete
