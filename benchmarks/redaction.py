"""How fast the PII redaction SQL runs inside ClickHouse, on one thread, over realistic content values.

Content values of 0.1-2 KB (prompt-like prose with an email, a phone, a Luhn-valid card and an IP mixed in) are
generated in ClickHouse; we time ``redact_sql`` + ``redaction_count_sql`` against a bare read of the same values,
in a throwaway embedded chDB with the real ``keel_projects`` table and dictionary.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

VALUES = 50_000
RUNS = 3
TENANT = "'bench'"
# Dense worst case: PII-looking tokens shuffled into every value (many candidates fail their checks).
WORDS = [
    "the", "customer", "asked", "about", "their", "invoice", "and", "the", "refund", "policy", "for", "annual",
    "plans", "please", "summarise", "contact", "jane.doe@example.com", "or", "call", "+1", "415", "555", "0100",
    "regarding", "order", "4111", "1111", "1111", "1111", "from", "10.2.3.4", "ticket", "1234567890", "on",
    "2025-01-15", "version", "1.2.3",
]
# Typical: prose with, in some values, one email / phone / card.
PROSE = "the customer asked about their invoice and the refund policy for annual plans please summarise the answer "


def _measure(s: Any, table: str) -> dict[str, object]:
    from ingestion.redaction import redact_sql, redaction_count_sql

    def best(sql: str) -> float:
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            s.query(sql + " SETTINGS max_threads = 1", "TSV")
            times.append(time.perf_counter() - t0)
        return min(times)

    total_bytes = int(str(s.query(f"SELECT sum(length(v)) FROM {table}", "TSV")).strip())
    bare = best(f"SELECT sum(length(v)) FROM {table}")
    redacted = best(f"SELECT sum(length({redact_sql('v', TENANT)})) FROM {table}")
    with_count = best(
        f"SELECT sum(length({redact_sql('v', TENANT)})), sum({redaction_count_sql('v', TENANT)}) FROM {table}"
    )
    placeholders = int(str(s.query(f"SELECT sum({redaction_count_sql('v', TENANT)}) FROM {table}", "TSV")))
    return {
        "values": VALUES,
        "mean_value_bytes": round(total_bytes / VALUES),
        "placeholders_per_value": round(placeholders / VALUES, 2),
        "bare_read_values_per_s": round(VALUES / bare),
        "redact_values_per_s": round(VALUES / redacted),
        "redact_mb_per_s": round(total_bytes / redacted / 1e6, 1),
        "redact_and_count_values_per_s": round(VALUES / with_count),
    }


def main() -> dict[str, object]:
    from chdb import session

    from ingestion.clickhouse.ddl import Topology
    from ingestion.clickhouse.schema import projects

    with tempfile.TemporaryDirectory() as tmp:
        s = session.Session(tmp)
        for statement in projects(Topology()):
            s.query(statement)
        s.query("INSERT INTO keel_projects VALUES ('bench', 1, 'redacted', '(?:ACME-\\\\d{6})', 1)")
        s.query("SYSTEM RELOAD DICTIONARY keel_project_dict")
        words = "[" + ", ".join("'" + w + "'" for w in WORDS) + "]"
        for table, select in (
            ("dense", f"arrayStringConcat(arrayMap(i -> {words}[(cityHash64(number, i) % {len(WORDS)}) + 1], "
                      "range(15 + number % 300)), ' ')"),
            ("typical", f"concat(repeat('{PROSE}', 1 + number % 15), "
                        "if(number % 3 = 0, ' mail jane.doe@example.com', ''), "
                        "if(number % 5 = 0, ' call +1 415 555 0100', ''), "
                        "if(number % 7 = 0, ' card 4111 1111 1111 1111', ''))"),
        ):
            s.query(f"CREATE TABLE {table} (v String) ENGINE = MergeTree ORDER BY tuple()")
            s.query(f"INSERT INTO {table} SELECT {select} FROM numbers({VALUES})")
        result: dict[str, object] = {
            "threads": 1,
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
            "typical": _measure(s, "typical"),
            "dense_worst_case": _measure(s, "dense"),
            "note": "one content value = one attribute; a span carries 2-3, so spans/s ≈ values/s ÷ 2.5. "
                    "Timings are best of 3 on a shared machine.",
        }
        s.close()
    out = Path(__file__).resolve().parent / "results" / "redaction.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
