"""Security properties end to end: API keys hashed and shown once, login throttling, security headers, PII
redaction on stored rows and everywhere content is shown.

Covered elsewhere and not repeated: ``check --deploy`` clean for production settings
(tests/foundation/test_settings.py::test_production_settings_pass_check_deploy), the per-username+IP throttle
details (tests/dashboards/test_actions.py::test_login_is_throttled_per_username_and_ip), redaction modes
(tests/ingestion/test_otlp_redaction.py), tenant isolation (tests/reliability/test_isolation.py).
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from controlplane.apikeys import issue_key

pytestmark = pytest.mark.django_db(transaction=True)


def _admin(project, django_user_model):  # type: ignore[no-untyped-def]
    from controlplane.models import Membership

    user = django_user_model.objects.create_user(f"sec-{uuid.uuid4().hex[:6]}", password="pw-123456789-s")
    Membership.objects.create(user=user, project=project, role="admin")
    return user


def _every_database_value() -> str:
    """All text in every table of the Django database (the secret must not be anywhere in it)."""
    out = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            out += [str(v) for row in cursor.fetchall() for v in row]
    return "\n".join(out)


def test_api_key_is_stored_hashed_and_shown_once(project, django_user_model) -> None:
    client = APIClient()
    client.force_login(_admin(project, django_user_model))
    created = client.post("/api/v1/keys", {"name": "ci", "scopes": ["ingest"]}, format="json")
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    random_part = secret.split("_", 2)[2]
    assert len(random_part) >= 32
    assert random_part not in _every_database_value()
    listed = client.get("/api/v1/keys")
    assert listed.status_code == 200 and secret not in listed.content.decode()
    assert random_part not in listed.content.decode()
    page = Client()
    page.force_login(_admin(project, django_user_model))
    assert random_part not in page.get(f"/settings/?project={project.slug}").content.decode()
    # and the key works: it is the hash that is stored, not a broken value
    from benchmarks.ingest_throughput import export_request

    assert Client().post("/v1/traces", data=export_request(1), content_type="application/x-protobuf",
                         HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


def test_login_is_throttled_after_repeated_failures(django_user_model) -> None:
    from django.core.cache import cache

    from dashboards.views.auth import MAX_FAILURES

    cache.clear()
    django_user_model.objects.create_user("throttle-me", password="the-right-password-1")
    client = Client()
    for _ in range(MAX_FAILURES):
        assert client.post("/login/", {"username": "throttle-me", "password": "wrong"}).status_code == 200
    blocked = client.post("/login/", {"username": "throttle-me", "password": "the-right-password-1"})
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("path", ["/login/", "/api/v1/calls", "/healthz"])
def test_security_headers_on_pages_and_api(client, path: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


PII = {"email": "jane.roe@example.com", "card": "4111 1111 1111 1111", "phone": "+1 415 555 0123"}


def test_pii_is_redacted_in_storage_and_everywhere_content_is_shown(project, ch, django_user_model) -> None:
    """A GenAI span carrying an email, a card number and a phone number in its prompt and completion (attributes)
    and in a ``gen_ai.user.message`` span event, plus a GenAI log record with the same: the stored rows
    (``otel_traces``, ``llm_calls``, ``otel_logs``), the calls API, the trace API, the traces page and the trace
    detail page never show them; the placeholders do. (Live WebSocket events carry alerts and actions, no content.)"""
    from benchmarks.ingest_throughput import export_request
    from tests.ingestion.test_otlp_support import logs_request

    msg = ExportTraceServiceRequest.FromString(export_request(1, seed=1))
    span = msg.resource_spans[0].scope_spans[0].spans[0]
    span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
    span.start_time_unix_nano, span.end_time_unix_nano = time.time_ns() - 2 * 10**9, time.time_ns() - 10**9
    for attr in span.attributes:
        if attr.key in ("gen_ai.input.messages", "gen_ai.output.messages"):
            attr.value.string_value = f"mail {PII['email']} card {PII['card']} call {PII['phone']} thanks"
    event = span.events.add(time_unix_nano=span.start_time_unix_nano + 1000, name="gen_ai.user.message")
    event.attributes.add(key="content").value.string_value = f"I am {PII['email']}, {PII['phone']}"
    key = issue_key(project, ["ingest", "read"]).secret
    response = Client().post("/v1/traces", data=msg.SerializeToString(), content_type="application/x-protobuf",
                             HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    logs = logs_request(span.trace_id, span.span_id, content=f"card {PII['card']} mail {PII['email']}")
    response = Client().post("/v1/logs", data=logs.SerializeToString(), content_type="application/x-protobuf",
                             HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    trace_id = span.trace_id.hex()

    def no_pii(text: str, where: str) -> None:
        for kind, value in PII.items():
            assert value not in text, f"{kind} shown in {where}"
            assert value.replace(" ", "") not in text.replace(" ", ""), f"{kind} (spaces removed) in {where}"

    stored = ch.query("SELECT toString(SpanAttributes), toString(ResourceAttributes), toString(Events.Attributes) "
                      "FROM otel_traces WHERE ProjectId = {p:String}", parameters={"p": project.tenant_id}).result_rows
    assert len(stored) == 1
    no_pii(" ".join(stored[0]), "otel_traces")
    assert "[EMAIL]" in stored[0][0] and "[CARD]" in stored[0][0]
    assert "[EMAIL]" in stored[0][2], "the span event's content is stored, redacted"
    logged = ch.query("SELECT Body, toString(LogAttributes) FROM otel_logs WHERE ProjectId = {p:String}",
                      parameters={"p": project.tenant_id}).result_rows
    assert len(logged) == 2
    no_pii(repr(logged), "otel_logs")
    assert "[CARD]" in repr(logged) and "[EMAIL]" in repr(logged)
    calls = ch.query("SELECT * FROM llm_calls WHERE ProjectId = {p:String}", parameters={"p": project.tenant_id})
    no_pii(repr(calls.result_rows), "llm_calls")

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    listed = api.get("/api/v1/calls", {"trace_id": trace_id})
    assert listed.status_code == 200 and len(listed.json()["results"]) == 1
    no_pii(listed.content.decode(), "calls API")
    trace = api.get(f"/api/v1/traces/{trace_id}")
    assert trace.status_code == 200 and len(trace.json()["spans"]) == 1
    no_pii(trace.content.decode(), "trace API")
    assert "[EMAIL]" in trace.content.decode(), "the trace API shows the (redacted) content"
    page = Client()
    page.force_login(_admin(project, django_user_model))
    for url in (f"/traces/?project={project.slug}", f"/traces/{trace_id}/?project={project.slug}"):
        shown = page.get(url)
        assert shown.status_code == 200, url
        no_pii(shown.content.decode(), url)
    detail = page.get(f"/traces/{trace_id}/?project={project.slug}").content.decode()
    assert "[EMAIL]" in detail, "the trace page shows the (redacted) content"
