"""The /metrics counters move when the things they count happen."""

from __future__ import annotations

import re

import pytest

from django.test import Client


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? ([0-9.e+-]+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.mark.django_db
def test_alert_transitions_are_counted(project) -> None:  # type: ignore[no-untyped-def]
    from anomaly.alerts import raise_alert

    before = _value(Client().get("/metrics").content.decode(), "keel_alerts_total", detector="routing",
                    event="opened")
    assert raise_alert(project=project, title="push failed", detail="gateway down", route="chat-default")
    after = _value(Client().get("/metrics").content.decode(), "keel_alerts_total", detector="routing",
                   event="opened")
    assert after == before + 1


@pytest.mark.django_db
def test_ingest_counters_follow_an_export(project) -> None:  # type: ignore[no-untyped-def]
    from controlplane.apikeys import issue_key
    from tests.ingestion.test_otlp_support import genai_request

    key = issue_key(project, ["ingest"]).secret
    client = Client()
    before = client.get("/metrics").content.decode()
    body = genai_request(4).SerializeToString()
    response = client.generic("POST", "/v1/traces", body, content_type="application/x-protobuf",
                              HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    unauthorised = client.generic("POST", "/v1/traces", body, content_type="application/x-protobuf")
    assert unauthorised.status_code == 401
    after = client.get("/metrics").content.decode()
    assert _value(after, "keel_spans_received_total") == _value(before, "keel_spans_received_total") + 4
    assert _value(after, "keel_spans_stored_total") == _value(before, "keel_spans_stored_total") + 4
    assert _value(after, "keel_otlp_requests_total", signal="traces", status="401") == _value(
        before, "keel_otlp_requests_total", signal="traces", status="401") + 1
    assert _value(after, "keel_insert_batch_rows_count") == _value(before, "keel_insert_batch_rows_count") + 1
