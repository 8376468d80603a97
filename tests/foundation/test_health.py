from __future__ import annotations

import pytest

from django.test import Client


@pytest.mark.django_db
def test_healthz_and_readyz_when_everything_is_up(client: Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert {name: part["ok"] for name, part in body["checks"].items()} == {
        "clickhouse": True, "database": True, "broker": True}


@pytest.mark.django_db
def test_readyz_reports_a_broken_clickhouse_url(client: Client, settings: pytest.FixtureRequest) -> None:
    settings.KEEL_CLICKHOUSE_URL = "http://127.0.0.1:1/keel"  # type: ignore[attr-defined]
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["clickhouse"]["ok"] is False and body["checks"]["database"]["ok"] is True
