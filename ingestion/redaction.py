"""PII redaction of message content, as ClickHouse expressions that run inside the insert.

Content (prompts, completions, tool arguments/results) is redacted *before* it is stored, by the same SQL that
flattens OTLP into ``otel_traces``: RE2 runs vectorised inside ClickHouse, so redaction costs no Python per span.
Card numbers are replaced only when Luhn-valid, IBANs only when their mod-97 check passes, SSNs only when their
area/group/serial are possible — those checks are array functions over the regex candidates.

Per-project switches come from ``keel_project_dict`` (synced from Django by :mod:`ingestion.project_sync`):

* ``content_capture``: ``none`` (content dropped → ``''``), ``redacted`` (default, also for unknown tenants),
  ``full`` (stored as sent);
* ``extra_pattern``: the project's extra RE2 patterns joined into one alternation, replaced by ``[CUSTOM]``.

How the flattening SQL (hot path) uses this module — ``tenant`` is the expression holding the project's
``tenant_id`` (a String column or ``{tenant:String}`` parameter)::

    # span attributes: redact content values only; keep the key so readers know content existed
    {redact_attributes_sql('attrs', tenant)} AS SpanAttributes
    # events: content keys anywhere plus every non-bookkeeping value of a content event (gen_ai.user.message …)
    {redact_event_attributes_sql('events.name', 'events.attributes', tenant)}
    # how many placeholders were inserted, e.g. SpanAttributes['keel.redactions'] (omit when 0), counted from
    # the already-redacted map so the redaction does not run twice:
    {placeholders_added_for_maps_sql('attrs', 'SpanAttributes')}

Per value, :func:`redact_patterns_sql` makes one RE2 pass with the alternation of every pattern
(:data:`ALL_CANDIDATES`, also usable as a cheap ``match`` pre-filter), then classifies and checks the few
candidates. :func:`redact_sql` adds the per-project mode and extra patterns.

Extra patterns are validated with ClickHouse's own RE2 (:func:`validate_extra_patterns`) before they are saved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PROJECT_DICT = "keel_project_dict"
DEFAULT_MODE = "redacted"
CAPTURE_MODES = ("none", "redacted", "full")
MAX_EXTRA_PATTERNS = 20
MAX_PATTERN_LENGTH = 500

# Attribute keys whose value is message content (exact).
CONTENT_ATTRIBUTE_KEYS: tuple[str, ...] = (
    # OTel GenAI (current and deprecated)
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.evaluation.explanation",
    # OpenInference
    "input.value",
    "output.value",
    "llm.prompts",
    "llm.prompt_template.template",
    "llm.prompt_template.variables",
    "tool.parameters",
    # Vercel AI SDK
    "ai.prompt",
    "ai.prompt.messages",
    "ai.prompt.tools",
    "ai.response.text",
    "ai.response.object",
    "ai.response.toolCalls",
    "ai.response.reasoning",
    "ai.toolCall.args",
    "ai.toolCall.result",
    "ai.value",
    "ai.values",
    "ai.embedding",
    "ai.embeddings",
    # Langfuse, Traceloop entities, OpenLIT
    "langfuse.observation.input",
    "langfuse.observation.output",
    "langfuse.trace.input",
    "langfuse.trace.output",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
    "gen_ai.content.reasoning",
    # LiteLLM / OpenLLMetry raw payloads
    "llm.openai.messages",
    "llm.openai.choices",
    "llm.None.input",
    "llm.input",
    "llm.output",
)

# Attribute keys holding content, by RE2 pattern (indexed, flattened conventions).
CONTENT_KEY_PATTERNS: tuple[str, ...] = (
    # OpenLLMetry indexed: gen_ai.prompt.0.content, gen_ai.completion.0.tool_calls.1.arguments
    r"^gen_ai\.(prompt|completion)\.\d+\.(content|tool_calls\.\d+\.arguments|function_call\.arguments)$",
    r"^llm\.request\.functions\.\d+\.(description|parameters)$",
    # OpenInference flattened messages
    r"^llm\.(input|output)_messages\.\d+\.message\.(content|contents\.\d+\.message_content\.(text|image\.image\.url)"
    r"|tool_calls\.\d+\.tool_call\.function\.arguments|function_call_arguments_json)$",
    r"^llm\.tools\.\d+\.tool\.json_schema$",
    r"^(retrieval|reranker\.(input|output))\.documents\.\d+\.document\.content$",
    r"^reranker\.query$",
    r"^embedding\.embeddings\.\d+\.embedding\.text$",
    # Traceloop / Langfuse prefixed variants
    r"^(traceloop\.entity|langfuse\.observation)\.(input|output)\.",
)

# Events whose every attribute (but the bookkeeping ones below) is content.
CONTENT_EVENT_NAMES: tuple[str, ...] = (
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
    "gen_ai.content.completion.chunk",
    "llm.content.completion.chunk",
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
    "gen_ai.client.inference.operation.details",
    "gen_ai.evaluation.result",
)
CONTENT_EVENT_NAME_PATTERN = r"^(gen_ai\.content\.|llm\.content\.)"
NON_CONTENT_EVENT_KEYS: tuple[str, ...] = (
    "gen_ai.system", "gen_ai.provider.name", "role", "index", "finish_reason", "id", "gen_ai.response.id",
    "gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model", "event.name",
    "gen_ai.evaluation.name", "gen_ai.evaluation.score.value", "gen_ai.evaluation.score.label",
)


# --- the patterns -----------------------------------------------------------------------------------------------

# Secrets run first: a JWT or key may contain digit runs the later patterns would otherwise claim.
SECRET_PATTERNS: tuple[str, ...] = (
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)-----END [A-Z ]*PRIVATE KEY-----",
    r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
    r"\bsk-(?:proj-|ant-(?:api\d\d-)?|or-v1-)?[A-Za-z0-9_-]{20,}",
    r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    r"\bAIza[0-9A-Za-z_-]{35}",
    r"\bkeel_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}",
)
# "Bearer <token>" keeps the word so the placeholder reads naturally.
BEARER_PATTERN = r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/-]{16,}=*"
EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
IBAN_CANDIDATE = r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"
CARD_CANDIDATE = r"\b\d(?:[ -]?\d){12,18}\b"
# Possible SSNs only, by construction: area not 000/666/9xx, group not 00, serial not 0000.
SSN_CANDIDATE = (
    r"\b(?:00[1-9]|0[1-9]\d|[1-578]\d\d|6[0-57-9]\d|66[0-57-9])[- ](?:0[1-9]|[1-9]\d)[- ]"
    r"(?:000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})\b"
)
_V4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4_PATTERN = rf"\b(?:{_V4}\.){{3}}{_V4}\b"
_H = r"[0-9A-Fa-f]{1,4}"
IPV6_PATTERN = (
    r"(?:"
    rf"(?:{_H}:){{7}}{_H}"
    rf"|(?:{_H}:){{1,6}}:(?:{_H}:){{0,5}}{_H}"
    rf"|(?:{_H}:){{1,7}}:"
    rf"|::(?:ffff:)?{_V4}(?:\.{_V4}){{3}}"
    rf"|::(?:{_H}:){{0,6}}{_H}"
    r")"
)
# Phones: international with '+', North American with separators, or trunk-prefixed national numbers with
# separators. Bare digit runs (order ids, timestamps) are not phones.
PHONE_CANDIDATE = (
    r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|(?:\(\d{3}\) ?|\b\d{3}[-. ])\d{3}[-. ]\d{4}\b"
    r"|\b0[1-9]\d{1,3}[ -]\d{3,4}[ -]?\d{3,4}\b)"
)

PLACEHOLDERS = ("[EMAIL]", "[PHONE]", "[CARD]", "[SSN]", "[IBAN]", "[IP]", "[SECRET]", "[CUSTOM]")
PLACEHOLDER_PATTERN = r"\[(?:EMAIL|PHONE|CARD|SSN|IBAN|IP|SECRET|CUSTOM)\]"


def sql_literal(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_lit = sql_literal


def _digits(c: str) -> str:
    return f"arrayMap(d -> toUInt8(d), extractAll({c}, '\\\\d'))"


def _luhn_ok(c: str) -> str:
    """Luhn check over the digits of candidate ``c`` (a lambda variable), for issuer prefixes 2-6."""
    rev = f"arrayReverse({_digits(c)})"
    return (
        f"(arraySum((d, i) -> if(i % 2 = 0, if(d * 2 > 9, d * 2 - 9, d * 2), d), {rev}, arrayEnumerate({rev})) "
        f"% 10 = 0 AND match({c}, '^[2-6]'))"
    )


def _iban_ok(c: str) -> str:
    """ISO 13616 mod-97 check: move the first four characters to the end, letters → 10..35."""
    s = f"replaceAll({c}, ' ', '')"
    rearranged = f"concat(substring({s}, 5), substring({s}, 1, 4))"
    values = (
        f"arrayFlatten(arrayMap(ch -> if(ch BETWEEN 48 AND 57, [toUInt64(ch - 48)], "
        f"[intDiv(toUInt64(ch - 55), 10), toUInt64(ch - 55) % 10]), "
        f"arrayMap(x -> reinterpretAsUInt8(x), splitByString('', {rearranged}))))"
    )
    mod97 = f"arrayFold((acc, d) -> toUInt64((acc * 10 + d) % 97), {values}, toUInt64(0))"
    return f"(length({s}) BETWEEN 15 AND 34 AND {mod97} = 1)"


def _ssn_ok(c: str) -> str:
    """Possible SSNs only: area not 000/666/9xx, group not 00, serial not 0000."""
    d = f"replaceRegexpAll({c}, '[^0-9]', '')"
    return (
        f"(substring({d}, 1, 3) NOT IN ('000', '666') AND substring({d}, 1, 1) != '9' "
        f"AND substring({d}, 4, 2) != '00' AND substring({d}, 6, 4) != '0000')"
    )


def _phone_ok(c: str) -> str:
    n = f"length(extractAll({c}, '\\\\d'))"
    return f"({n} BETWEEN 8 AND 15 OR (NOT startsWith({c}, '+') AND {n} BETWEEN 10 AND 12))"


def _replace_checked(text: str, candidate: str, check: str, placeholder: str) -> str:
    """Replace candidates of ``candidate`` that pass ``check`` (a function of the lambda variable)."""
    valid = f"arrayFilter(c -> {check}, extractAll({text}, {_lit(candidate)}))"
    return f"arrayFold((acc, c) -> replaceAll(acc, c, {_lit(placeholder)}), {valid}, {text})"


def _wrap(fn: str, inner: str, pattern: str, replacement: str) -> str:
    return f"{fn}({inner}, {_lit(pattern)}, {_lit(replacement)})"


def _chained_sql(s: str) -> str:
    """Pattern by pattern, each pass over the whole value (slow on long text; used on short leftovers only)."""
    s = _wrap("replaceRegexpAll", s, "|".join(SECRET_PATTERNS), "[SECRET]")
    s = _wrap("replaceRegexpAll", s, BEARER_PATTERN, "\\1[SECRET]")
    s = _wrap("replaceRegexpAll", s, EMAIL_PATTERN, "[EMAIL]")
    s = _replace_checked(s, IBAN_CANDIDATE, _iban_ok("c"), "[IBAN]")
    s = _replace_checked(s, CARD_CANDIDATE, _luhn_ok("c"), "[CARD]")
    s = _replace_checked(s, SSN_CANDIDATE, _ssn_ok("c"), "[SSN]")
    s = _wrap("replaceRegexpAll", s, IPV6_PATTERN, "[IP]")
    s = _wrap("replaceRegexpAll", s, IPV4_PATTERN, "[IP]")
    return _replace_checked(s, PHONE_CANDIDATE, _phone_ok("c"), "[PHONE]")


# One alternation of every built-in pattern (no capturing groups: extractAll would return the group). At one
# position the first alternative wins, so the order is the precedence: secrets, emails, IBANs, cards, SSNs, IPs,
# phones.
_BEARER_CANDIDATE = r"(?i:\bbearer\s+)[A-Za-z0-9._~+/-]{16,}=*"
_KINDS: tuple[tuple[str, str], ...] = (
    ("secret", "|".join(SECRET_PATTERNS)),
    ("bearer", _BEARER_CANDIDATE),
    ("email", EMAIL_PATTERN),
    ("iban", IBAN_CANDIDATE),
    ("card", CARD_CANDIDATE),
    ("ssn", SSN_CANDIDATE),
    ("ipv6", IPV6_PATTERN),
    ("ipv4", IPV4_PATTERN),
    ("phone", PHONE_CANDIDATE),
)
ALL_CANDIDATES = "|".join(f"(?:{pattern})" for _, pattern in _KINDS)


def _bind(value: str, var: str, body: str) -> str:
    """``body`` with ``var`` bound to ``value`` (evaluated once; keeps the generated SQL small)."""
    return f"arrayElement(arrayMap({var} -> {body}, [{value}]), 1)"


def _classify(m: str) -> str:
    """The replacement for candidate ``m``: its placeholder when it passes its check, else itself — except that a
    digit run failing the Luhn check still has any phone number or SSN inside it redacted."""

    def whole(kind: str) -> str:
        return f"match({m}, {_lit('^(?:' + dict(_KINDS)[kind] + ')$')})"

    # Every branch of a conditional inside a lambda is evaluated for every candidate: keep this one to two regexes.
    inside_digit_run = _wrap("replaceRegexpAll", _wrap("replaceRegexpAll", m, SSN_CANDIDATE, "[SSN]"),
                             PHONE_CANDIDATE, "[PHONE]")
    return (
        f"multiIf({whole('secret')}, '[SECRET]', "
        f"{whole('bearer')}, concat(extract({m}, '^(?i)(bearer\\\\s+)'), '[SECRET]'), "
        f"{whole('email')}, '[EMAIL]', "
        f"{whole('iban')} AND {_iban_ok(m)}, '[IBAN]', "
        f"{whole('card')} AND {_luhn_ok(m)}, '[CARD]', "
        f"{whole('ssn')} AND {_ssn_ok(m)}, '[SSN]', "
        f"{whole('ipv6')} OR {whole('ipv4')}, '[IP]', "
        f"{whole('phone')} AND {_phone_ok(m)}, '[PHONE]', "
        f"{whole('card')}, {inside_digit_run}, "
        f"{m})"
    )


# Dictionary value for "no extra patterns": a regex that matches nothing, so the replace needs no branch.
NEVER_MATCHES = r"[^\x00-\x{10FFFF}]"


def redact_patterns_sql(expr: str, tenant_expr: str | None = None) -> str:
    """The built-in patterns (and, with a tenant, the project's extra patterns) applied to ``expr``.

    One RE2 pass over the value whatever the number of patterns: ``replaceRegexpAll`` wraps every candidate of
    the combined alternation in NUL bytes, ``splitByChar`` then yields text and candidates alternately; only the
    candidates are classified and checked (Luhn, mod 97, SSN ranges) and the pieces are stitched back together.
    NUL bytes already in the value become U+FFFD first so they cannot be mistaken for markers.
    """
    clean = f"replaceAll(toString({expr}), '\\0', '\\xEF\\xBF\\xBD')"
    marked = f"replaceRegexpAll({clean}, {_lit(ALL_CANDIDATES)}, '\\0\\\\0\\0')"
    body = (
        "arrayStringConcat(arrayMap((redact_text, redact_repl) -> concat(redact_text, redact_repl), "
        "arrayFilter((q, i) -> i % 2 = 1, redact_parts, arrayEnumerate(redact_parts)), "
        f"arrayPushBack(arrayMap(cand -> {_classify('cand')}, "
        "arrayFilter((q, i) -> i % 2 = 0, redact_parts, arrayEnumerate(redact_parts))), '')))"
    )
    out = _bind(f"splitByChar('\\0', {marked})", "redact_parts", body)
    if tenant_expr is not None:
        extra = _dict_get("extra_pattern", tenant_expr, _lit(NEVER_MATCHES))
        out = f"replaceRegexpAll({out}, if({extra} = '', {_lit(NEVER_MATCHES)}, {extra}), '[CUSTOM]')"
    return out


def _dict_get(attribute: str, tenant_expr: str, default: str) -> str:
    return f"dictGetOrDefault('{PROJECT_DICT}', '{attribute}', tuple(toString({tenant_expr})), {default})"


def capture_mode_sql(tenant_expr: str) -> str:
    """The project's content-capture mode; 'redacted' for tenants not (yet) synced."""
    return _dict_get("content_capture", tenant_expr, _lit(DEFAULT_MODE))


def redact_sql(expr: str, tenant_expr: str) -> str:
    """``expr`` as it may be stored for the tenant: '' (none), redacted (default) or unchanged (full)."""
    mode = capture_mode_sql(tenant_expr)
    return f"multiIf({mode} = 'none', '', {mode} = 'full', toString({expr}), {redact_patterns_sql(expr, tenant_expr)})"


def redaction_count_sql(expr: str, tenant_expr: str) -> str:
    """How many placeholders redaction inserted into ``expr`` (0 for 'none' and 'full').

    This re-runs the redaction; when the redacted value is already selected, use :func:`placeholders_added_sql`.
    """
    return placeholders_added_sql(expr, redact_sql(expr, tenant_expr))


def placeholders_added_sql(original_expr: str, redacted_expr: str) -> str:
    """Placeholders in the redacted value that were not in the original (cheap: two scans, no regex per type)."""
    pattern = _lit(PLACEHOLDER_PATTERN)
    return (
        f"toUInt64(greatest(0, toInt64(countMatches(toString({redacted_expr}), {pattern})) "
        f"- toInt64(countMatches(toString({original_expr}), {pattern}))))"
    )


def placeholders_added_for_maps_sql(original_map: str, redacted_map: str) -> str:
    """Total placeholders added across two maps with the same keys in the same order (``mapApply`` keeps order).

    For the hot path: ``redact_attributes_sql(attrs, tenant) AS SpanAttributes`` then
    ``placeholders_added_for_maps_sql(attrs, 'SpanAttributes')`` counts without redacting twice.
    """
    return (
        f"arraySum(arrayMap((o, r) -> {placeholders_added_sql('o', 'r')}, mapValues({original_map}), "
        f"mapValues({redacted_map})))"
    )


def is_content_key_sql(key_expr: str) -> str:
    """True when the attribute key ``key_expr`` holds message content."""
    exact = ", ".join(_lit(k) for k in CONTENT_ATTRIBUTE_KEYS)
    pattern = _lit("|".join(f"(?:{p})" for p in CONTENT_KEY_PATTERNS))
    return f"({key_expr} IN ({exact}) OR match({key_expr}, {pattern}))"


def is_content_event_sql(name_expr: str) -> str:
    """True when the event named ``name_expr`` carries content in its attributes."""
    names = ", ".join(_lit(n) for n in CONTENT_EVENT_NAMES)
    return f"({name_expr} IN ({names}) OR match({name_expr}, {_lit(CONTENT_EVENT_NAME_PATTERN)}))"


def is_content_event_attribute_sql(name_expr: str, key_expr: str) -> str:
    """True for content keys anywhere and for every non-bookkeeping attribute of a content event."""
    bookkeeping = ", ".join(_lit(k) for k in NON_CONTENT_EVENT_KEYS)
    return (
        f"({is_content_key_sql(key_expr)} OR ({is_content_event_sql(name_expr)} "
        f"AND {key_expr} NOT IN ({bookkeeping})))"
    )


def redact_attributes_sql(map_expr: str, tenant_expr: str) -> str:
    """A Map(String, String) with its content values redacted for the tenant."""
    return f"mapApply((k, v) -> (k, if({is_content_key_sql('k')}, {redact_sql('v', tenant_expr)}, v)), {map_expr})"


def redaction_count_for_map_sql(map_expr: str, tenant_expr: str) -> str:
    """Total placeholders inserted across the content values of a Map(String, String)."""
    return (
        f"arraySum(mapValues(mapApply((k, v) -> (k, if({is_content_key_sql('k')}, "
        f"{redaction_count_sql('v', tenant_expr)}, toUInt64(0))), {map_expr})))"
    )


def redact_event_attributes_sql(names_expr: str, attributes_expr: str, tenant_expr: str) -> str:
    """``Events.Attributes`` with content redacted, given the parallel ``Events.Name`` array."""
    return (
        f"arrayMap((n, m) -> mapApply((k, v) -> (k, if({is_content_event_attribute_sql('n', 'k')}, "
        f"{redact_sql('v', tenant_expr)}, v)), m), {names_expr}, {attributes_expr})"
    )


# --- extra patterns ---------------------------------------------------------------------------------------------


class InvalidPattern(ValueError):
    """An extra redaction pattern was rejected; the message names the pattern and why."""


def combined_extra_pattern(patterns: Iterable[str]) -> str:
    """The project's extra patterns as one RE2 alternation ('' when none)."""
    return "|".join(f"(?:{p})" for p in patterns if p)


def _re2_reason(message: str) -> str:
    match = re.search(r"error: (.*?)\. Look at", message, re.S) or re.search(r"error: ([^.]*)", message)
    return match.group(1).strip() if match else "RE2 cannot compile it"


def validate_extra_patterns(patterns: object) -> list[str]:
    """Check extra patterns with ClickHouse's RE2 (the engine that will run them); returns the cleaned list.

    Rejects non-strings, over-long patterns, patterns RE2 cannot compile and patterns that match the empty
    string (they would insert ``[CUSTOM]`` between every character).
    """
    if patterns is None:
        return []
    if not isinstance(patterns, list | tuple) or not all(isinstance(p, str) for p in patterns):
        raise InvalidPattern("Extra patterns must be a list of regular expression strings.")
    cleaned = [p for p in (p.strip() for p in patterns) if p]
    if len(cleaned) > MAX_EXTRA_PATTERNS:
        raise InvalidPattern(f"At most {MAX_EXTRA_PATTERNS} extra patterns are allowed (got {len(cleaned)}).")
    if not cleaned:
        return []
    from ingestion.clickhouse.client import get_client

    client = get_client()
    for p in cleaned:
        if len(p) > MAX_PATTERN_LENGTH:
            raise InvalidPattern(f"Pattern {p[:40]!r}… is longer than {MAX_PATTERN_LENGTH} characters.")
        try:
            matches_empty = client.query("SELECT match('', {p:String})", parameters={"p": p}).result_rows[0][0]
        except Exception as exc:  # the driver wraps RE2's message in a DatabaseError
            reason = _re2_reason(str(exc))
            raise InvalidPattern(f"Pattern {p!r} is not a valid RE2 regular expression: {reason}") from None
        if matches_empty:
            raise InvalidPattern(f"Pattern {p!r} matches the empty string; it must match at least one character.")
    return cleaned
