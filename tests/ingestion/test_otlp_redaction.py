"""The landing views redact exactly like :func:`ingestion.redaction.redact_sql`, for every capture mode."""

from __future__ import annotations

import pytest

from django.test import Client

from controlplane.apikeys import issue_key
from ingestion.clickhouse.landing import _TENANT_SWITCHES, _redacted_map_sql
from ingestion.redaction import redact_attributes_sql
from tests.ingestion.test_otlp_support import genai_request, stored_spans

VALUES = {
    "gen_ai.input.messages": "write to jane.doe@example.com, card 4111 1111 1111 1111, ip 10.0.0.1, order ZX-42",
    "gen_ai.output.messages": "nothing sensitive here at all",
    "gen_ai.prompt.0.content": "call +1 415 555 0100 or use key sk-proj-abcdefghijklmnopqrstuvwx",
    "llm.input_messages.0.message.content": "my SSN is 123-45-6789 and my IBAN GB82 WEST 1234 5698 7654 32",
    "http.url": "mailto:not-content@example.com stays: this key is not content",
}


def _compare(ch, tenant: str, custom: bool = True) -> tuple[dict[str, str], dict[str, str]]:  # type: ignore[no-untyped-def]
    m = "CAST(({keys:Array(String)}, {values:Array(String)}), 'Map(String, String)')"
    ours = _redacted_map_sql(m, custom=custom)
    theirs = redact_attributes_sql(m, "keel_project")
    row = ch.query(
        f"SELECT {ours}, {theirs} FROM "
        f"(SELECT keel_project, {_TENANT_SWITCHES} FROM (SELECT {{t:String}} AS keel_project))",
        parameters={"keys": list(VALUES), "values": list(VALUES.values()), "t": tenant},
    ).result_rows[0]
    return row[0], row[1]


@pytest.mark.django_db
@pytest.mark.parametrize(("mode", "extra"), [("redacted", []), ("full", []), ("none", []),
                                             ("redacted", [r"ZX-\d+"])])
def test_fast_map_redaction_matches_redact_sql(ch, project, mode, extra) -> None:  # type: ignore[no-untyped-def]
    project.content_capture = mode
    project.pii_extra_patterns = extra
    project.save()  # pushes the switches to keel_project_dict
    ours, theirs = _compare(ch, project.tenant_id)
    assert ours == theirs
    assert ours["http.url"] == VALUES["http.url"]
    if mode == "full":
        assert ours == VALUES
    elif mode == "none":
        assert ours["gen_ai.input.messages"] == ""
    else:
        assert "[EMAIL]" in ours["gen_ai.input.messages"] and "[CARD]" in ours["gen_ai.input.messages"]
        assert ("[CUSTOM]" in ours["gen_ai.input.messages"]) == bool(extra)
    if not extra and mode != "none":  # the lean landing view (the projects it serves) stores the same
        assert _compare(ch, project.tenant_id, custom=False) == (ours, theirs)


def test_unknown_tenant_is_redacted(ch) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = _compare(ch, "no-such-tenant")
    assert ours == theirs
    assert "[EMAIL]" in ours["gen_ai.input.messages"]


@pytest.mark.django_db
@pytest.mark.parametrize(("mode", "stored"), [("none", ""), ("full", "hello from bob@example.com"),
                                              ("redacted", "hello from [EMAIL]")])
def test_capture_mode_applies_to_received_spans(project, mode, stored) -> None:
    project.content_capture = mode
    project.save()
    key = issue_key(project, ["ingest"]).secret
    response = Client().generic("POST", "/v1/traces", genai_request(1).SerializeToString(),
                                content_type="application/x-protobuf", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    [row] = stored_spans(project.tenant_id)
    assert row[5]["gen_ai.input.messages"] == stored
    assert row[5]["gen_ai.request.model"] == "gpt-4o-mini"


@pytest.mark.django_db
def test_switching_to_capture_none_applies_to_the_next_request(project) -> None:
    """The receiver caches per-project settings; a save (this process) takes effect at once, not after the cache."""
    key = issue_key(project, ["ingest"]).secret

    def send() -> None:
        response = Client().generic("POST", "/v1/traces", genai_request(1).SerializeToString(),
                                    content_type="application/x-protobuf", HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 200

    send()
    project.content_capture = "none"
    project.save()
    send()
    contents = sorted(row[5]["gen_ai.input.messages"] for row in stored_spans(project.tenant_id))
    assert contents == ["", "hello from [EMAIL]"]
