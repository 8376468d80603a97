"""PII redaction runs as ClickHouse SQL: every case here executes the real expression in chDB."""

from __future__ import annotations

import pytest

from ingestion.redaction import (
    InvalidPattern,
    is_content_event_attribute_sql,
    is_content_key_sql,
    redact_attributes_sql,
    redact_event_attributes_sql,
    redact_sql,
    redaction_count_for_map_sql,
    redaction_count_sql,
    validate_extra_patterns,
)

pytestmark = pytest.mark.django_db


def redact(ch, text: str, tenant: str) -> str:  # type: ignore[no-untyped-def]
    sql = f"SELECT {redact_sql('{text:String}', '{tenant:String}')}"
    return ch.query(sql, parameters={"text": text, "tenant": tenant}).result_rows[0][0]


def count(ch, text: str, tenant: str) -> int:  # type: ignore[no-untyped-def]
    sql = f"SELECT {redaction_count_sql('{text:String}', '{tenant:String}')}"
    return ch.query(sql, parameters={"text": text, "tenant": tenant}).result_rows[0][0]


POSITIVE = [
    ("write to john.doe+billing@example.co.uk today", "write to [EMAIL] today"),
    ("a@b.io,c.d@e-f.org", "[EMAIL],[EMAIL]"),
    ("visa 4111 1111 1111 1111 ok", "visa [CARD] ok"),
    ("dashed 4111-1111-1111-1111", "dashed [CARD]"),
    ("amex 378282246310005, mc 5555555555554444", "amex [CARD], mc [CARD]"),
    ("ssn 123-45-6789.", "ssn [SSN]."),
    ("iban GB82 WEST 1234 5698 7654 32 end", "iban [IBAN] end"),
    ("iban DE89370400440532013000", "iban [IBAN]"),
    ("from 192.168.1.10 via 10.0.0.1", "from [IP] via [IP]"),
    ("v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 and fe80::1 and ::1", "v6 [IP] and [IP] and [IP]"),
    ("call +1 415-555-0132 now", "call [PHONE] now"),
    ("(415) 555-0132 or 415.555.0132", "[PHONE] or [PHONE]"),
    ("uk +44 20 7946 0958 or 020 7946 0958", "uk [PHONE] or [PHONE]"),
    # a digit run that is not a valid card still has the phone inside it redacted
    ("call 415 555 0100 4111 now", "call [PHONE] 4111 now"),
    ("pay 4111 1111 1111 1111 then mail x@y.io from 10.0.0.7", "pay [CARD] then mail [EMAIL] from [IP]"),
    ("nul \x00 byte then a@b.co", "nul \ufffd byte then [EMAIL]"),
    ("x" * 3000 + " ann@corp.com " + "y" * 3000, "x" * 3000 + " [EMAIL] " + "y" * 3000),
    ("key sk-proj-abcdefghijklmnopqrstuvwxyz123456", "key [SECRET]"),
    ("anthropic sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "anthropic [SECRET]"),
    ("aws AKIAIOSFODNN7EXAMPLE", "aws [SECRET]"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [SECRET]"),
    ("slack xoxb-1234567890-abcdefghij", "slack [SECRET]"),
    ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer [SECRET]"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "jwt [SECRET]",
    ),
    ("stripe sk_live_abcdefghijklmnop1234", "stripe [SECRET]"),
    (
        '[{"role":"user","parts":[{"type":"text","content":"I am ann@corp.com, card 5555 5555 5555 4444"}]}]',
        '[{"role":"user","parts":[{"type":"text","content":"I am [EMAIL], card [CARD]"}]}]',
    ),
]

NEGATIVE = [
    "card-like but Luhn-invalid 4111 1111 1111 1112",
    "zeros 0000 0000 0000 0000 and 1234567812345678",
    "order 1234567890, unix time 1700000000, year 2024",
    "date 2024-01-15 and 15/01/2024 and time 12:30:45",
    "impossible SSNs 000-12-3456 666-12-3456 900-12-3456 123-00-4567",
    "version 1.2.3 and 999.1.1.1 and pi 3.14159 and price 1,234.56",
    "bad IBAN GB82WEST12345698765433 and word DE12 ABCD",
    "mac 00:1A:2B:3C:4D:5E is not an IP",
    "short sk-abc and bearer of good news",
    "plain prose without anything personal in it",
]


@pytest.fixture
def tenant(project) -> str:  # type: ignore[no-untyped-def]
    return project.tenant_id


@pytest.mark.parametrize(("text", "expected"), POSITIVE)
def test_pii_is_replaced_by_typed_placeholders(ch, tenant, text, expected) -> None:  # type: ignore[no-untyped-def]
    assert redact(ch, text, tenant) == expected
    assert count(ch, text, tenant) == expected.count("[") - text.count("[")


@pytest.mark.parametrize("text", NEGATIVE)
def test_lookalikes_are_left_alone(ch, tenant, text) -> None:  # type: ignore[no-untyped-def]
    assert redact(ch, text, tenant) == text
    assert count(ch, text, tenant) == 0


def test_unknown_tenant_defaults_to_redacted(ch) -> None:  # type: ignore[no-untyped-def]
    assert redact(ch, "mail x@y.com", "tenant-never-synced") == "mail [EMAIL]"


def test_placeholders_already_in_text_are_not_counted(ch, tenant) -> None:  # type: ignore[no-untyped-def]
    assert count(ch, "[EMAIL] was here and a@b.co too", tenant) == 1


def test_content_keys(ch) -> None:  # type: ignore[no-untyped-def]
    content = ["gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
               "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.prompt", "gen_ai.prompt.0.content",
               "gen_ai.completion.1.tool_calls.0.arguments", "llm.input_messages.0.message.content",
               "llm.output_messages.2.message.tool_calls.0.tool_call.function.arguments", "input.value",
               "output.value", "ai.prompt.messages", "ai.response.text", "ai.response.toolCalls",
               "langfuse.observation.input", "traceloop.entity.output", "retrieval.documents.3.document.content"]
    not_content = ["gen_ai.request.model", "gen_ai.prompt.name", "gen_ai.prompt.0.role",
                   "gen_ai.completion.0.finish_reason", "gen_ai.usage.input_tokens",
                   "llm.input_messages.0.message.role", "input.mime_type", "ai.response.model", "user.id", "keel.route"]
    rows = ch.query(f"SELECT k, {is_content_key_sql('k')} FROM (SELECT arrayJoin({{keys:Array(String)}}) AS k)",
                    parameters={"keys": content + not_content}).result_rows
    got = dict(rows)
    assert [k for k in content if not got[k]] == []
    assert [k for k in not_content if got[k]] == []


def test_content_events_redact_all_but_bookkeeping(ch) -> None:  # type: ignore[no-untyped-def]
    sql = f"SELECT {is_content_event_attribute_sql('{n:String}', '{k:String}')}"
    assert ch.query(sql, parameters={"n": "gen_ai.user.message", "k": "content"}).result_rows[0][0] == 1
    chunk = {"n": "gen_ai.content.completion.chunk", "k": "gen_ai.completion"}
    assert ch.query(sql, parameters=chunk).result_rows[0][0] == 1
    assert ch.query(sql, parameters={"n": "gen_ai.choice", "k": "finish_reason"}).result_rows[0][0] == 0
    assert ch.query(sql, parameters={"n": "exception", "k": "exception.type"}).result_rows[0][0] == 0


def test_map_and_event_helpers(ch, tenant) -> None:  # type: ignore[no-untyped-def]
    attrs = {"gen_ai.input.messages": "hi, I'm bo@x.org", "user.id": "bo@x.org", "gen_ai.request.model": "gpt-4o"}
    events = [{"content": "call 415-555-0132", "role": "user"}, {"exception.message": "415-555-0132"}]
    m = "mapFromArrays({mk:Array(String)}, {mv:Array(String)})"
    e = "arrayMap((ks, vs) -> mapFromArrays(ks, vs), {ek:Array(Array(String))}, {ev:Array(Array(String))})"
    row = ch.query(
        f"SELECT {redact_attributes_sql(m, '{t:String}')}, {redaction_count_for_map_sql(m, '{t:String}')}, "
        f"{redact_event_attributes_sql('{n:Array(String)}', e, '{t:String}')}",
        parameters={"mk": list(attrs), "mv": list(attrs.values()), "t": tenant,
                    "n": ["gen_ai.user.message", "exception"],
                    "ek": [list(x) for x in events], "ev": [list(x.values()) for x in events]},
    ).result_rows[0]
    # user.id is not message content: it stays (it is an identifier the product needs)
    assert row[0] == {**attrs, "gen_ai.input.messages": "hi, I'm [EMAIL]"}
    assert row[1] == 1
    assert row[2] == [{"content": "call [PHONE]", "role": "user"}, {"exception.message": "415-555-0132"}]


def test_extra_patterns_are_validated_with_re2(db) -> None:  # type: ignore[no-untyped-def]
    assert validate_extra_patterns([r" ACME-\d{6} ", ""]) == [r"ACME-\d{6}"]
    assert validate_extra_patterns(None) == []
    with pytest.raises(InvalidPattern, match="not a valid RE2 regular expression: missing \\)"):
        validate_extra_patterns(["ok", "a(b"])
    with pytest.raises(InvalidPattern, match="not a valid RE2"):
        validate_extra_patterns([r"(?<=x)y"])  # look-behind: Perl has it, RE2 does not
    with pytest.raises(InvalidPattern, match="matches the empty string"):
        validate_extra_patterns(["x*"])
    with pytest.raises(InvalidPattern, match="list of regular expression strings"):
        validate_extra_patterns("ACME")
    with pytest.raises(InvalidPattern, match="list of regular expression strings"):
        validate_extra_patterns([1])
