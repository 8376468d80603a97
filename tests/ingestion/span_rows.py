"""Write spans into ``otel_traces`` the way the OTel Collector does, and read back what the calls view made of them."""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support import COLLECTOR_COLUMNS

# Two days ago (inside the raw-data TTL, which drops older rows on insert), at a fixed time of day.
START = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).replace(tzinfo=None, hour=12, minute=30, second=15,
                                                                  microsecond=123456)


@dataclass
class Span:
    attrs: dict[str, Any]
    name: str = "chat test"
    scope: str = "test.scope"
    scope_version: str = "1.0"
    status: str = "Unset"
    service: str = "svc"
    duration_ms: float = 1500.0
    start: dt.datetime = START
    events: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)  # (ms after start, name, attrs)
    resource: dict[str, str] = field(default_factory=dict)
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""

    def row(self, tenant: str) -> list[Any]:
        attrs = {k: _stringify(v) for k, v in self.attrs.items()}
        resource = {"service.name": self.service, "keel.project_id": tenant, **self.resource}
        return [
            self.start, self.trace_id or os.urandom(16).hex(), self.span_id or os.urandom(8).hex(),
            self.parent_span_id, "", self.name, "Client", self.service, resource, self.scope, self.scope_version, attrs,
            int(self.duration_ms * 1e6), self.status, "",
            [self.start + dt.timedelta(milliseconds=ms) for ms, _, _ in self.events],
            [name for _, name, _ in self.events], [a for _, _, a in self.events], [], [], [], [],
        ]


def _stringify(value: Any) -> str:
    """The Collector's stringification: booleans lower-case, arrays as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        import json

        return json.dumps(value)
    return str(value)


def insert_spans(ch: Any, tenant: str, spans: list[Span]) -> None:
    ch.insert("otel_traces", [s.row(tenant) for s in spans], column_names=COLLECTOR_COLUMNS)


def calls(ch: Any, tenant: str, columns: list[str]) -> list[dict[str, Any]]:
    result = ch.query(
        f"SELECT {', '.join(columns)} FROM llm_calls FINAL WHERE ProjectId = {{tenant:String}} "
        "ORDER BY Timestamp, SpanName",
        parameters={"tenant": tenant},
    )
    return [dict(zip(columns, row, strict=True)) for row in result.result_rows]


def set_prices(ch: Any, rows: list[tuple[str, str, float, float, float, float, float]],
               valid_from: dt.date = dt.date(2024, 1, 1)) -> None:
    """(provider, model, input, output, cached, cache_write, reasoning) rows straight into ``keel_prices``."""
    version = time.time_ns()
    ch.insert(
        "keel_prices",
        [[p, m, valid_from, dt.date(2149, 6, 6), i, o, c, w, r, "test", 0, version] for p, m, i, o, c, w, r in rows],
        column_names=["provider", "model", "valid_from", "valid_to", "input_per_mtok", "output_per_mtok",
                      "cached_input_per_mtok", "cache_write_per_mtok", "reasoning_per_mtok", "source", "deleted",
                      "version"],
    )
    ch.command("SYSTEM RELOAD DICTIONARY keel_price_dict")


def new_tenant() -> str:
    return os.urandom(8).hex()
