"""Where OTLP requests land in ClickHouse, and the SQL that flattens them into Collector-compatible tables.

The receiver does not turn spans into Python rows. It inserts the client's serialized OTLP protobuf (validated,
with the tenant appended as an extra field) in ClickHouse's length-delimited ``Protobuf`` format into a
``Null``-engine *landing* table whose columns mirror the OTLP message tree. Materialized views flatten that tree
(``ARRAY JOIN resource → scope → span``) into ``otel_traces`` / ``otel_logs`` with the OTel Collector exporter's
stringification rules and apply PII redaction on the way; ``otel_traces`` then feeds ``llm_calls`` and the
rollups through their own views. Python stays off the per-span path.

The wrapper messages ``KeelTraces`` / ``KeelLogs`` reuse field 1 of ``ExportTraceServiceRequest`` /
``ExportLogsServiceRequest`` and add ``keel_project`` (and ``keel_request_id``) at high field numbers: protobuf
concatenation merges, so ``client payload + keel fields`` is a valid wrapper message and, because the last value of
a singular field wins, a client cannot smuggle its own ``keel_project`` in.

Known limits of the ClickHouse type mapping (the types cannot recurse): attribute values are decoded to two
levels — an array or key-value list inside an array/list value is stored as ``null`` in the JSON rendering.
"""

from __future__ import annotations

from django.conf import settings

from ingestion import redaction
from ingestion.clickhouse.ddl import Topology, ttl_days
from ingestion.redaction import is_content_event_attribute_sql, redact_sql

TRACES_LANDING = "keel_traces_landing"
# Same shape; its view also applies projects' extra PII patterns and capture "none". The writer sends a project's
# requests here only when the project needs one of those, so everyone else's inserts skip that work.
TRACES_CUSTOM_LANDING = "keel_traces_custom_landing"
LOGS_LANDING = "keel_logs_landing"
LOGS_TABLE = "otel_logs"
KEYS_TABLE = "keel_ingest_keys"
SPAN_KEYS_TABLE = "keel_span_keys"

PROJECT_FIELD = 100001
REQUEST_ID_FIELD = 100002

# Self-contained (no imports): passed inline with format_schema_source='string', so no files on the server.
PROTO_SCHEMA = """
syntax = "proto3";
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; }
message Status { string message = 2; int32 code = 3; }
message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5;
  int32 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
  repeated Event events = 11; repeated Link links = 13; Status status = 15;
}
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message KeelTraces {
  repeated ResourceSpans resource_spans = 1;
  string keel_project = 100001;
  string keel_request_id = 100002;
}
message LogRecord {
  fixed64 time_unix_nano = 1; int32 severity_number = 2; string severity_text = 3; AnyValue body = 5;
  repeated KeyValue attributes = 6; fixed32 flags = 8; bytes trace_id = 9; bytes span_id = 10;
  fixed64 observed_time_unix_nano = 11; string event_name = 12;
}
message ScopeLogs { InstrumentationScope scope = 1; repeated LogRecord log_records = 2; string schema_url = 3; }
message ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2; string schema_url = 3; }
message KeelLogs {
  repeated ResourceLogs resource_logs = 1;
  string keel_project = 100001;
  string keel_request_id = 100002;
}
"""

_SCALARS = "string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String"
_ONEOF = (
    "value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4, "
    "'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)"
)
_INNER_VALUE = f"Tuple({_ONEOF}, {_SCALARS})"
_VALUE = (
    f"Tuple({_ONEOF}, {_SCALARS}, array_value Tuple(values Array({_INNER_VALUE})), "
    f"kvlist_value Tuple(values Array(Tuple(key String, value {_INNER_VALUE}))))"
)
_ATTRS = f"Array(Tuple(key String, value {_VALUE}))"
_SCOPE = f"Tuple(name String, version String, attributes {_ATTRS})"

_TRACES_COLUMNS = f"""
    keel_project String,
    keel_request_id String,
    resource_spans Array(Tuple(
        resource Tuple(attributes {_ATTRS}),
        scope_spans Array(Tuple(
            scope {_SCOPE},
            spans Array(Tuple(
                trace_id String, span_id String, trace_state String, parent_span_id String, name String,
                kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64, attributes {_ATTRS},
                events Array(Tuple(time_unix_nano UInt64, name String, attributes {_ATTRS})),
                links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {_ATTRS})),
                status Tuple(message String, code Int32))),
            schema_url String)),
        schema_url String))"""

_LOGS_COLUMNS = f"""
    keel_project String,
    keel_request_id String,
    resource_logs Array(Tuple(
        resource Tuple(attributes {_ATTRS}),
        scope_logs Array(Tuple(
            scope {_SCOPE},
            log_records Array(Tuple(
                time_unix_nano UInt64, severity_number Int32, severity_text String, body {_VALUE},
                attributes {_ATTRS}, flags UInt32, trace_id String, span_id String, observed_time_unix_nano UInt64,
                event_name String)),
            schema_url String)),
        schema_url String))"""

TRACES_INSERT_COLUMNS = ["keel_project", "keel_request_id", "resource_spans"]
LOGS_INSERT_COLUMNS = ["keel_project", "keel_request_id", "resource_logs"]


def insert_settings(message: str) -> dict[str, object]:
    """Query settings for a raw length-delimited ``Protobuf`` insert of ``message`` wrappers."""
    return {
        "format_schema_source": "string",
        "format_schema": PROTO_SCHEMA,
        "format_schema_message_name": message,
        "input_format_protobuf_oneof_presence": 1,
        # The views' SELECTs read only the inserted block, so query-plan optimisations (filter push-down, index
        # analysis, …) find nothing to improve, yet cost ~50 ms of CPU on every insert: a quarter of its fixed cost.
        "query_plan_enable_optimizations": 0,
        # otel_traces deduplicates identical insert blocks (for a Collector retrying an insert straight into it),
        # which hashes every byte of every block: ~15 ms per 8,000 spans. Keel's own inserts never repeat a block
        # — the writer drops already stored spans by key before inserting (see ingestion.writer) — so they skip it.
        "insert_deduplicate": 0,
    }


# --- OTLP value → Collector string (pcommon.Value.AsString) ---------------------------------------------------


def _scalar_json(v: str) -> str:
    """JSON rendering of a scalar AnyValue (inside arrays / key-value lists)."""
    return (
        f"multiIf({v}.value = 'string_value', toJSONString({v}.string_value), "
        f"{v}.value = 'int_value', toString({v}.int_value), "
        f"{v}.value = 'double_value', toString({v}.double_value), "
        f"{v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'), "
        f"{v}.value = 'bytes_value', toJSONString(base64Encode({v}.bytes_value)), 'null')"
    )


def value_string_sql(v: str) -> str:
    """A top-level AnyValue as the Collector stores it: scalars as text, arrays and maps as JSON."""
    array_json = f"concat('[', arrayStringConcat(arrayMap(x -> {_scalar_json('x')}, {v}.array_value.values), ','), ']')"
    kvlist_json = (
        "concat('{', arrayStringConcat(arrayMap(kv -> concat(toJSONString(kv.key), ':', "
        f"{_scalar_json('kv.value')}), {v}.kvlist_value.values), ','), '}}')"
    )
    return (
        f"multiIf({v}.value = 'string_value', {v}.string_value, "
        f"{v}.value = 'int_value', toString({v}.int_value), "
        f"{v}.value = 'double_value', toString({v}.double_value), "
        f"{v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'), "
        f"{v}.value = 'bytes_value', base64Encode({v}.bytes_value), "
        f"{v}.value = 'array_value', {array_json}, "
        f"{v}.value = 'kvlist_value', {kvlist_json}, '')"
    )


def attributes_map_sql(kvs: str) -> str:
    """``Array(Tuple(key, value))`` → ``Map(String, String)``."""
    return f"mapFromArrays(arrayMap(kv -> kv.key, {kvs}), arrayMap(kv -> {value_string_sql('kv.value')}, {kvs}))"


# Per-request columns computed once per landing row (the tenant is the same for the whole request).
_TENANT_SWITCHES = (
    f"{redaction.capture_mode_sql('keel_project')} AS keel_capture, "
    f"dictGetOrDefault('{redaction.PROJECT_DICT}', 'extra_pattern', tuple(keel_project), '') AS keel_extra"
)


def _redacted_map_sql(map_expr: str, event_name: str = "''", *, custom: bool = True) -> str:
    """Content values (by key, or every non-bookkeeping value of a content event) as the project may store them.

    Same result as applying :func:`ingestion.redaction.redact_sql` to each content value, arranged for speed: the
    project's mode and extra pattern are looked up once per request (``keel_capture``/``keel_extra``), only
    content values enter the lambda, and the redaction appears once. Anything beyond "full or redacted" costs
    time on every row even when no row needs it (a branch over a map is evaluated for every row; a project's
    extra pattern is a column, not a constant, so it costs a lookup per value even when it never matches), so
    ``custom=False`` — the lean landing table, for projects without extra patterns whose capture is not "none"
    — handles only those two modes; the custom landing table handles every switch.
    """
    content = f"mapFilter((k, v) -> {is_content_event_attribute_sql(event_name, 'k')}, {map_expr})"
    redacted = redaction.redact_patterns_sql("v")
    if not custom:
        stored = f"mapUpdate({map_expr}, mapApply((k, v) -> (k, {redacted}), {content}))"
        return f"if(keel_capture = 'full', {map_expr}, {stored})"
    never = redaction.sql_literal(redaction.NEVER_MATCHES)
    value = f"replaceRegexpAll({redacted}, if(keel_extra = '', {never}, keel_extra), '[CUSTOM]')"
    stored = f"mapUpdate({map_expr}, mapApply((k, v) -> (k, if(keel_capture = 'none', '', {value})), {content}))"
    return f"if(keel_capture = 'full', {map_expr}, {stored})"


def _resource_map_sql(kvs: str) -> str:
    # The tenant comes from the API key only: whatever the client put in keel.project_id is overwritten.
    return f"mapUpdate({attributes_map_sql(kvs)}, map('keel.project_id', keel_project))"


def _nanos(expr: str) -> str:
    return f"fromUnixTimestamp64Nano(toInt64({expr}))"


# Caps (like the OTel SDK's span limits, applied here so no client can make a row unbounded): the first
# MAX_SPAN_EVENTS events are kept (one event per streamed chunk exists in the wild; the first chunk is what TTFT
# needs), plus any later `exception` event (the error type). An attribute value of a span or event whose payload
# (string, bytes, or the strings inside an array / key-value list) exceeds MAX_ATTRIBUTE_BYTES is stored cut to
# that many bytes (at a UTF-8 boundary). A span that lost something says so in the attributes
# `keel.truncated.events` (events dropped) and `keel.truncated.attributes` (values cut), which
# `llm_calls.Truncated` and the coverage view count.
MAX_SPAN_EVENTS = 128
MAX_ATTRIBUTE_BYTES = 65536
TRUNCATED_EVENTS_KEY = "keel.truncated.events"
TRUNCATED_ATTRIBUTES_KEY = "keel.truncated.attributes"


def _payload_bytes_sql(v: str) -> str:
    """Size of an AnyValue's payload, from lengths only (cheap: no stringification)."""
    return (
        f"(length({v}.string_value) + length({v}.bytes_value) "
        f"+ arraySum(x -> length(x.string_value) + length(x.bytes_value), {v}.array_value.values) "
        f"+ arraySum(x -> length(x.key) + length(x.value.string_value) + length(x.value.bytes_value), "
        f"{v}.kvlist_value.values))"
    )


def _capped_values_sql(kvs: str) -> str:
    """The values of ``kvs`` as strings, an oversized one cut (the stringification appears once in the SQL: each
    copy costs analysis time on every insert)."""
    return (
        f"arrayMap((kv, t) -> if({_payload_bytes_sql('kv.value')} > {MAX_ATTRIBUTE_BYTES}, "
        f"toValidUTF8(substring(t, 1, {MAX_ATTRIBUTE_BYTES})), t), "
        f"{kvs}, arrayMap(kv -> {value_string_sql('kv.value')}, {kvs}))"
    )


def _cut_values_sql(kvs: str) -> str:
    return f"arrayCount(kv -> {_payload_bytes_sql('kv.value')} > {MAX_ATTRIBUTE_BYTES}, {kvs})"


def _span_attributes_sql(kvs: str, all_events: str, kept_events: str) -> str:
    """The span's attributes with values capped, plus the truncation attributes when something was dropped.

    Keys are ``LowCardinality`` (the type ``otel_traces`` stores), as in event maps: the redaction's content-key
    check (a set lookup and a regex) then runs once per distinct key of the block, not once per attribute.
    """
    cut = f"({_cut_values_sql(kvs)} + arraySum(e -> {_cut_values_sql('e.attributes')}, {kept_events}))"
    counts = f"[toUInt64(length({all_events}) - length({kept_events})), toUInt64({cut})]"
    return (
        f"mapFromArrays(CAST("
        f"arrayConcat(arrayMap(kv -> kv.key, {kvs}), "
        f"arrayFilter((k, n) -> n > 0, ['{TRUNCATED_EVENTS_KEY}', '{TRUNCATED_ATTRIBUTES_KEY}'], {counts})), "
        f"'Array(LowCardinality(String))'), "
        f"arrayConcat({_capped_values_sql(kvs)}, "
        f"arrayMap(n -> toString(n), arrayFilter(n -> n > 0, {counts}))))"
    )


def _capped_map_sql(kvs: str) -> str:
    return f"mapFromArrays(arrayMap(kv -> toLowCardinality(kv.key), {kvs}), {_capped_values_sql(kvs)})"


def traces_flatten_select(landing: str, *, custom: bool = True) -> str:
    """Landing rows (one per OTLP request) → one ``otel_traces`` row per span.

    ``custom=False`` leaves out projects' extra redaction patterns (see :func:`_redacted_map_sql`).

    The attribute maps are built in a middle subquery so the redaction expression refers to a column, not to
    a copy of the map-building expression (keeps the query tree far below ClickHouse's size limit). Events and
    attribute values are capped there too (see ``MAX_SPAN_EVENTS``).
    """
    return f"""SELECT
    keel_project AS ProjectId,
    {_nanos('s.start_time_unix_nano')} AS Timestamp,
    lower(hex(s.trace_id)) AS TraceId,
    lower(hex(s.span_id)) AS SpanId,
    lower(hex(s.parent_span_id)) AS ParentSpanId,
    s.trace_state AS TraceState,
    s.name AS SpanName,
    transform(s.kind, [1, 2, 3, 4, 5], ['Internal', 'Server', 'Client', 'Producer', 'Consumer'], 'Unspecified')
        AS SpanKind,
    res['service.name'] AS ServiceName,
    res AS ResourceAttributes,
    scope_name AS ScopeName,
    scope_version AS ScopeVersion,
    {_redacted_map_sql('span_attrs', custom=custom)} AS SpanAttributes,
    if(s.end_time_unix_nano > s.start_time_unix_nano, s.end_time_unix_nano - s.start_time_unix_nano, 0) AS Duration,
    transform(s.status.code, [1, 2], ['Ok', 'Error'], 'Unset') AS StatusCode,
    s.status.message AS StatusMessage,
    arrayMap(e -> {_nanos('e.time_unix_nano')}, events) AS `Events.Timestamp`,
    event_names AS `Events.Name`,
    arrayMap((n, m) -> {_redacted_map_sql('m', 'n', custom=custom)}, event_names, event_attrs)
        AS `Events.Attributes`,
    arrayMap(l -> lower(hex(l.trace_id)), s.links) AS `Links.TraceId`,
    arrayMap(l -> lower(hex(l.span_id)), s.links) AS `Links.SpanId`,
    arrayMap(l -> l.trace_state, s.links) AS `Links.TraceState`,
    arrayMap(l -> {attributes_map_sql('l.attributes')}, s.links) AS `Links.Attributes`
FROM (
    SELECT keel_project, keel_capture, keel_extra, res, ss.scope.name AS scope_name,
        ss.scope.version AS scope_version, s,
        arrayConcat(arraySlice(s.events, 1, {MAX_SPAN_EVENTS}),
                    arrayFilter(e -> e.name = 'exception', arraySlice(s.events, {MAX_SPAN_EVENTS + 1}))) AS events,
        {_span_attributes_sql('s.attributes', 's.events', 'events')} AS span_attrs,
        arrayMap(e -> e.name, events) AS event_names,
        arrayMap(e -> {_capped_map_sql('e.attributes')}, events) AS event_attrs
    FROM (
        SELECT keel_project, {_TENANT_SWITCHES}, {_resource_map_sql('rs.resource.attributes')} AS res,
            rs.scope_spans AS scope_spans
        FROM {landing}
        ARRAY JOIN resource_spans AS rs
    )
    ARRAY JOIN scope_spans AS ss
    ARRAY JOIN ss.spans AS s
)"""


def logs_flatten_select(landing: str) -> str:
    """Landing rows → one ``otel_logs`` row per log record (GenAI events: content redacted like span events)."""
    tenant = "keel_project"
    event_name = "if(r.event_name != '', r.event_name, attrs['event.name'])"
    return f"""SELECT
    keel_project AS ProjectId,
    {_nanos('if(r.time_unix_nano = 0, r.observed_time_unix_nano, r.time_unix_nano)')} AS Timestamp,
    lower(hex(r.trace_id)) AS TraceId,
    lower(hex(r.span_id)) AS SpanId,
    toUInt8(bitAnd(r.flags, 255)) AS TraceFlags,
    r.severity_text AS SeverityText,
    toUInt8(greatest(0, least(255, r.severity_number))) AS SeverityNumber,
    res['service.name'] AS ServiceName,
    {redact_sql(value_string_sql('r.body'), tenant)} AS Body,
    res_schema_url AS ResourceSchemaUrl,
    res AS ResourceAttributes,
    sl.schema_url AS ScopeSchemaUrl,
    sl.scope.name AS ScopeName,
    sl.scope.version AS ScopeVersion,
    {attributes_map_sql('sl.scope.attributes')} AS ScopeAttributes,
    {_redacted_map_sql('attrs', event_name)} AS LogAttributes,
    {event_name} AS EventName
FROM (
    SELECT keel_project, {_TENANT_SWITCHES}, {_resource_map_sql('rl.resource.attributes')} AS res,
        rl.schema_url AS res_schema_url,
        rl.scope_logs AS scope_logs
    FROM {landing}
    ARRAY JOIN resource_logs AS rl
)
ARRAY JOIN scope_logs AS sl
ARRAY JOIN sl.log_records AS r
ARRAY JOIN [{attributes_map_sql('r.attributes')}] AS attrs"""


# --- DDL --------------------------------------------------------------------------------------------------------


def landing_tables(t: Topology) -> list[str]:
    """Null-engine landing tables: rows pass through to the views and are never stored."""
    return [
        f"CREATE TABLE IF NOT EXISTS {TRACES_LANDING}{t.on_cluster} ({_TRACES_COLUMNS}\n) ENGINE = Null",
        f"CREATE TABLE IF NOT EXISTS {LOGS_LANDING}{t.on_cluster} ({_LOGS_COLUMNS}\n) ENGINE = Null",
    ]


def otel_logs(t: Topology) -> list[str]:
    """The OTel Collector exporter's ``otel_logs`` (newest template), project first in the key."""
    table = t.local(LOGS_TABLE)
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}{t.on_cluster} (
    ProjectId LowCardinality(String) DEFAULT ResourceAttributes['keel.project_id'] CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName String CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_lower_body lower(Body) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = {t.engine('', LOGS_TABLE)}
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ProjectId, ServiceName, TimestampTime)
ORDER BY (ProjectId, ServiceName, TimestampTime, Timestamp)
{ttl_days('TimestampTime', settings.KEEL_CONTENT_TTL_DAYS)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1""",
        *t.distributed(LOGS_TABLE, "cityHash64(TraceId)"),
    ]


def ingest_keys(t: Topology) -> list[str]:
    """Recently stored span keys (trace+span) and log request ids per project, for idempotent retries.

    Fed by views, so spans a Collector writes straight into ``otel_traces`` are known too. Kept two days:
    exporters retry within seconds to minutes.
    """
    table = t.local(KEYS_TABLE)
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}{t.on_cluster} (
    ProjectId LowCardinality(String),
    Kind LowCardinality(String),
    Key String,
    InsertedAt DateTime DEFAULT now()
) ENGINE = {t.engine('Replacing', KEYS_TABLE)}
ORDER BY (ProjectId, Kind, Key)
TTL InsertedAt + toIntervalDay(2)""",
        *t.distributed(KEYS_TABLE, "cityHash64(Key)"),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_span_mv{t.on_cluster} TO {table} AS "
        f"SELECT ProjectId, 'span' AS Kind, concat(TraceId, SpanId) AS Key FROM {t.local('otel_traces')}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_logs_mv{t.on_cluster} TO {table} AS "
        f"SELECT keel_project AS ProjectId, 'logs' AS Kind, keel_request_id AS Key FROM {LOGS_LANDING}",
    ]


def span_keys(t: Topology) -> list[str]:
    """Stored span keys per project and *minute of the span's start*, for idempotent retries at any volume.

    A retried span has the same start time, so the writer looks up only the minutes its batch covers: the primary
    key prunes to those minutes and a lookup reads about a minute of keys, not the whole retention window.
    ``Minute`` is the start time in whole minutes since the epoch, computed from the stored nanoseconds exactly
    as :func:`ingestion.otlp.decoding.span_minute` does. Fed by a view on ``otel_traces`` (so spans a Collector
    writes straight into ClickHouse are known too); kept two days.
    """
    table = t.local(SPAN_KEYS_TABLE)
    return [
        f"""CREATE TABLE IF NOT EXISTS {table}{t.on_cluster} (
    ProjectId LowCardinality(String),
    Minute Int64,
    Key String,
    InsertedAt DateTime DEFAULT now()
) ENGINE = {t.engine('Replacing', SPAN_KEYS_TABLE)}
ORDER BY (ProjectId, Minute, Key)
TTL InsertedAt + toIntervalDay(2)
SETTINGS index_granularity = 1024""",
        *t.distributed(SPAN_KEYS_TABLE, "cityHash64(Key)"),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv{t.on_cluster} TO {table} AS "
        f"SELECT ProjectId, intDiv(toUnixTimestamp64Nano(Timestamp), 60000000000) AS Minute, "
        f"concat(TraceId, SpanId) AS Key FROM {t.local('otel_traces')}",
    ]


def lean_traces_views(t: Topology) -> list[str]:
    """The lean traces landing view (full or redacted content), and the custom landing table for every switch."""
    return [
        # MODIFY QUERY swaps the SELECT atomically: no insert passes through the Null table unseen meanwhile.
        f"ALTER TABLE {TRACES_LANDING}_mv{t.on_cluster} MODIFY QUERY "
        + traces_flatten_select(TRACES_LANDING, custom=False),
        f"CREATE TABLE IF NOT EXISTS {TRACES_CUSTOM_LANDING}{t.on_cluster} ({_TRACES_COLUMNS}\n) ENGINE = Null",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {TRACES_CUSTOM_LANDING}_mv{t.on_cluster} TO {t.local('otel_traces')} "
        "AS " + traces_flatten_select(TRACES_CUSTOM_LANDING, custom=True),
    ]


def traces_view_queries(t: Topology) -> list[str]:
    """Swap both traces landing views' SELECTs for the current :func:`traces_flatten_select` (an upgrade step)."""
    return [
        f"ALTER TABLE {table}_mv{t.on_cluster} MODIFY QUERY " + traces_flatten_select(table, custom=custom)
        for table, custom in ((TRACES_LANDING, False), (TRACES_CUSTOM_LANDING, True))
    ]


def flatten_views(t: Topology) -> list[str]:
    return [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {TRACES_LANDING}_mv{t.on_cluster} TO {t.local('otel_traces')} AS "
        + traces_flatten_select(TRACES_LANDING),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {LOGS_LANDING}_mv{t.on_cluster} TO {t.local(LOGS_TABLE)} AS "
        + logs_flatten_select(LOGS_LANDING),
    ]


def all_statements(t: Topology) -> list[str]:
    return [*landing_tables(t), *otel_logs(t), *ingest_keys(t), *flatten_views(t)]
