"""The batch writer: concurrent requests share one insert; a request ClickHouse refuses does not sink the others."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pytest

from ingestion.clickhouse.client import get_client
from ingestion.otlp.decoding import PROTOBUF, TRACES, decode
from ingestion.receiver import request_id
from ingestion.writer import BatchWriter, StoreUnavailable
from tests.ingestion.test_otlp_support import count_calls, count_spans, genai_request


class _Recording:
    """The real client, counting landing inserts; optionally failing inserts whose block contains ``poison``."""

    def __init__(self, gate: threading.Event | None = None, poison: bytes | None = None) -> None:
        self.inserts: list[int] = []
        self.gate = gate
        self.poison = poison

    def __call__(self) -> _Recording:
        return self

    def __getattr__(self, name: str) -> Any:
        real = getattr(get_client(), name)
        if name != "raw_insert":
            return real

        def raw_insert(table: str, columns: list[str], insert_block: Iterable[bytes], fmt: str, settings: dict) -> Any:  # type: ignore[type-arg]
            block = b"".join(insert_block)  # the writer streams a one-shot generator (no driver replay)
            if self.gate is not None:
                self.gate.wait(10)
            if self.poison is not None and self.poison in block:
                raise RuntimeError("Code: 27. Cannot parse input")
            self.inserts.append(len(block))
            return real(table, columns, insert_block=iter([block]), fmt=fmt, settings=settings)

        return raw_insert


def _submit(writer: BatchWriter, tenant: str, service: str = "svc"):  # type: ignore[no-untyped-def]
    export = decode(TRACES, genai_request(2, service=service).SerializeToString(), PROTOBUF)
    return writer.submit(TRACES, tenant, export, request_id(tenant, TRACES, export.payload))


@pytest.mark.django_db
def test_requests_queued_during_an_insert_are_written_together(project) -> None:
    gate = threading.Event()
    client = _Recording(gate=gate)
    writer = BatchWriter(client_factory=client)
    first = _submit(writer, project.tenant_id)
    while writer._queue:  # the writer thread took the first request and waits at the gate
        threading.Event().wait(0.01)
    rest = [_submit(writer, project.tenant_id, service=f"s{i}") for i in range(5)]
    gate.set()
    assert [f.result(30) for f in [first, *rest]] == [2] * 6
    assert len(client.inserts) == 2  # one for the first request, one for the five that queued behind it
    assert count_spans(project.tenant_id) == 12
    assert count_calls(project.tenant_id) == 12


@pytest.mark.django_db
def test_a_request_clickhouse_refuses_fails_alone(project) -> None:
    gate = threading.Event()
    client = _Recording(gate=gate, poison=b"poison-service")
    writer = BatchWriter(client_factory=client)
    blocker = _submit(writer, project.tenant_id)
    while writer._queue:
        threading.Event().wait(0.01)
    good = [_submit(writer, project.tenant_id, service=f"good{i}") for i in range(3)]
    bad = _submit(writer, project.tenant_id, service="poison-service")
    gate.set()
    assert blocker.result(30) == 2
    assert [f.result(30) for f in good] == [2, 2, 2]
    with pytest.raises(StoreUnavailable, match="Cannot parse"):
        bad.result(30)
    assert count_spans(project.tenant_id) == 8


@pytest.mark.django_db
def test_an_idle_writer_lingers_for_requests_arriving_close_together(project) -> None:
    client = _Recording()
    writer = BatchWriter(client_factory=client, linger_ms=200, max_linger_ms=2000)
    futures = []
    for i in range(4):  # exporters answered by one insert send their next requests a few ms apart
        futures.append(_submit(writer, project.tenant_id, service=f"l{i}"))
        threading.Event().wait(0.02)
    assert [f.result(30) for f in futures] == [2] * 4
    assert len(client.inserts) == 1
    assert count_spans(project.tenant_id) == 8



@pytest.mark.parametrize("start", [0, 1, 59_999_999_999, 60_000_000_000, 1_764_800_000_123_456_789,
                                   (1 << 63) - 1, 1 << 63, (1 << 64) - 1, (1 << 64) - 60_000_000_001])
def test_span_minute_is_the_minute_clickhouse_keys_the_span_by(start: int) -> None:
    """The retry check looks up keys by minute: Python's minute of a span must be the one the keys view stores."""
    from ingestion.otlp.decoding import span_minute

    stored = get_client().query(
        "SELECT intDiv(toUnixTimestamp64Nano(fromUnixTimestamp64Nano(toInt64({s:UInt64}))), 60000000000)",
        parameters={"s": start},
    ).result_rows[0][0]
    assert span_minute(start) == stored


@pytest.mark.django_db
def test_a_span_resent_in_another_request_is_found_by_its_minute(project) -> None:
    """Same span, different request (another batch, other neighbours): stored once, found in its minute's keys."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    writer = BatchWriter()
    first = genai_request(3, service="resend")
    export = decode(TRACES, first.SerializeToString(), PROTOBUF)
    assert writer.submit(TRACES, project.tenant_id, export, request_id(project.tenant_id, TRACES, export.payload)
                         ).result(30) == 3
    again = ExportTraceServiceRequest()
    again.CopyFrom(first)
    extra = genai_request(1, service="resend").resource_spans[0].scope_spans[0].spans[0]
    again.resource_spans[0].scope_spans[0].spans.append(extra)
    export2 = decode(TRACES, again.SerializeToString(), PROTOBUF)
    assert export2.span_minutes  # the minutes the lookup is limited to
    writer.submit(TRACES, project.tenant_id, export2, request_id(project.tenant_id, TRACES, export2.payload)
                  ).result(30)
    assert count_spans(project.tenant_id) == 4
    assert count_calls(project.tenant_id) == 4


def test_stored_keys_are_bound_without_the_drivers_escaping_pass_and_still_match() -> None:
    """Hex keys skip the driver's per-character escaping (its cost grew with the batch) but stay a bound parameter
    with the same value; anything needing escapes falls back to the plain string."""
    from clickhouse_connect.driver.binding import format_bind_value

    from ingestion.writer import _keys_parameter

    keys = "0af3" * 12 + "," + "b" * 48
    bound = _keys_parameter(keys)
    assert not isinstance(bound, str) and format_bind_value(bound) == keys
    echoed = get_client().query("SELECT {keys:String}", parameters={"keys": bound}).result_rows[0][0]
    assert echoed == keys
    assert _keys_parameter("it's") == "it's"
    quoted = get_client().query("SELECT {k:String}", parameters={"k": _keys_parameter("it's")}).result_rows[0][0]
    assert quoted == "it's"
