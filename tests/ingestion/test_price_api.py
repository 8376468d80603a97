"""``/api/v1/prices``: staff edit the global price list (synced to ClickHouse at once); others may only read."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from django.contrib.auth import get_user_model
from django.test import Client

from controlplane.apikeys import issue_key

pytestmark = pytest.mark.django_db


def priced(ch, model: str) -> float | None:  # type: ignore[no-untyped-def]
    rows = ch.query("SELECT dictGetOrNull('keel_price_dict', 'input_per_mtok', tuple('openai', {m:String}), today())",
                    parameters={"m": model}).result_rows
    return rows[0][0]


def body(model: str, **extra: object) -> dict[str, object]:
    return {"provider": "openai", "model_pattern": model, "valid_from": str(dt.date(2024, 1, 1)),
            "input_per_mtok": "1.5", "output_per_mtok": "6", **extra}


def test_staff_create_update_delete_sync_clickhouse(ch) -> None:  # type: ignore[no-untyped-def]
    staff = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    client = Client()
    client.force_login(staff)
    model = f"api-{os.urandom(3).hex()}"
    created = client.post("/api/v1/prices", body(model), content_type="application/json")
    assert created.status_code == 201, created.content
    assert priced(ch, model) == 1.5
    pk = created.json()["id"]
    updated = client.patch(f"/api/v1/prices/{pk}", {"input_per_mtok": "2"}, content_type="application/json")
    assert updated.status_code == 200 and updated.json()["input_per_mtok"] == "2.000000"
    assert priced(ch, model) == 2.0
    assert client.delete(f"/api/v1/prices/{pk}").status_code == 204
    assert priced(ch, model) is None


def test_bad_price_is_a_clear_400(ch) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(get_user_model().objects.create_user("ops2", password="x", is_staff=True))
    response = client.post("/api/v1/prices", body("neg-model", input_per_mtok="-1"), content_type="application/json")
    assert response.status_code == 400
    assert "negative" in response.content.decode()


def test_non_staff_and_keys_can_only_read(project) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(get_user_model().objects.create_user("viewer", password="x"))
    assert client.get("/api/v1/prices").status_code == 200
    assert client.post("/api/v1/prices", body("x"), content_type="application/json").status_code == 403
    key = issue_key(project, ["read"]).secret
    anonymous = Client()
    assert anonymous.get("/api/v1/prices").status_code in (401, 403)
    listed = anonymous.get("/api/v1/prices", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert listed.status_code == 200
    denied = anonymous.post("/api/v1/prices", body("y"), content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {key}")
    assert denied.status_code == 403 and "detail" in denied.json()
