"""Run Keel's benchmarks: ``python -m benchmarks.run [name ...]`` (``make bench`` runs them all).

Each registered module has ``main() -> dict`` that writes ``benchmarks/results/<name>.json`` and returns the same
figures; afterwards ``benchmarks/RESULTS.md`` is regenerated from every JSON file present.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# name -> module; add yours here.
REGISTRY: dict[str, str] = {
    "redaction": "benchmarks.redaction",
    "runtime_memory": "benchmarks.runtime_memory",
    "remediation": "benchmarks.remediation_latency",
    "dashboards": "benchmarks.dashboard_latency",
    "ingest": "benchmarks.ingest_throughput",
    "load": "benchmarks.load",
    "detection_quality": "benchmarks.detection_quality",
    "detector_sweep": "benchmarks.detector_sweep",
    "detector_sweep_e2e": "benchmarks.detector_sweep_e2e",
    "normalise": "benchmarks.normalise",
}


def write_results_md() -> Path:
    lines = [
        "# Benchmark results",
        "",
        f"Regenerated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} / "
        f"Python {platform.python_version()}"
        " by `make bench`. Each section is the JSON a benchmark wrote.",
        "",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        lines += [f"## {path.stem}", "", "```json", json.dumps(data, indent=2, default=str), "```", ""]
    out = RESULTS.parent / "RESULTS.md"
    out.write_text("\n".join(lines))
    return out


def main(argv: list[str]) -> int:
    RESULTS.mkdir(exist_ok=True)
    names = argv or list(REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"== {name}", flush=True)
        importlib.import_module(REGISTRY[name]).main()
    print(f"wrote {write_results_md()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
