"""The CI-sized load run (``make load`` is the 10-minute one): a real ``manage.py serve`` process takes paced OTLP
traffic with concurrent API and dashboard reads, is stopped gracefully, and every acknowledged span is stored
exactly once — compared by (TraceId, SpanId), not by a counter."""

from __future__ import annotations

import json

import pytest

from benchmarks import load

pytestmark = pytest.mark.slow


def test_short_load_loses_nothing_and_duplicates_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = load.run(seconds=30, spans_per_s=100, spans_per_request=128, var=tmp_path)
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mb_samples"}, indent=1))
    acked = result["spans_acknowledged"]
    assert acked >= 128 * 5, result  # it really was under load
    assert result["acknowledged_but_missing"] == 0
    assert result["stored_but_never_acknowledged"] == 0
    assert result["spans_stored_distinct"] == acked
    assert result["otel_traces_rows"] == acked  # no duplicate rows either
    assert result["llm_calls_rows_final"] == acked
    assert set(result["requests_by_status"]) <= {"200", "429", "503"}, result["requests_by_status"]
    assert result["read_failure_count"] == 0, result["read_failures"]
    reads = result["reads"]
    assert any(name.startswith("/api/") for name in reads) and any(name.startswith("page ") for name in reads), reads
    assert result["server_exit_code"] == 0
    # Memory: a short run still warms caches; a leak proportional to traffic would break this bound.
    assert result["rss_mb_end"] < 1.5 * result["rss_mb_after_first_third"] + 100, result["rss_mb_samples"]
