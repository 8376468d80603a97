"""Speed benchmark: the full per-series detector set over 1,000 series x 7 days of minute rollups.

Production loads one metric family for every series of a project in one ClickHouse query and hands
the (series x minutes) matrix to ``detect_batch``; this does the same with synthetic matrices, on one
core, and times each family:

* latency p95 (seasonal robust baseline + CUSUM + alert episodes),
* error rate (binomial tests with pooled windows, using call counts),
* call volume (Poisson tests, drops and spikes),
* cost per call and tokens per call (as latency, log scale),
* the joint IsolationForest: one forest fitted on the baseline window, scoring the newest hour of every
  series (what the per-minute job does); scoring all 10M rows is reported separately.

    python benchmarks/detector_sweep.py [--series 1000] [--days 7] [--out benchmarks/results/detector_sweep.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One core, as the target says: pin BLAS/OpenMP pools before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anomaly.detectors import detect_batch, joint_scores  # noqa: E402

MINUTES_PER_DAY = 1440
START_EPOCH = 1_735_689_600


def synthetic_family(rng: np.random.Generator, n_series: int, n_minutes: int) -> dict[str, np.ndarray]:
    t = np.arange(n_minutes) / MINUTES_PER_DAY
    phase = rng.uniform(0, 1, size=(n_series, 1))
    season = np.sin(2 * np.pi * (t - phase))
    calls = rng.poisson(np.exp(np.log(rng.uniform(5, 200, size=(n_series, 1))) + 0.5 * season)).astype(float)
    noise = rng.normal(size=(n_series, n_minutes))
    latency = np.exp(np.log(rng.uniform(400, 4000, size=(n_series, 1))) + 0.15 * season + 0.08 * noise)
    errors = rng.binomial(calls.astype(int), 0.01).astype(float)
    cost = np.exp(np.log(rng.uniform(0.001, 0.05, size=(n_series, 1))) + 0.05 * noise)
    tokens = np.exp(np.log(rng.uniform(150, 1500, size=(n_series, 1))) + 0.05 * noise[:, ::-1])
    empty = calls == 0
    for arr in (latency, cost, tokens):
        arr[empty] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = np.where(calls > 0, errors / calls, np.nan)
    return {
        "calls": calls,
        "errors": errors,
        "latency": latency,
        "error_rate": error_rate,
        "cost": cost,
        "tokens": tokens,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds allowed for the sweep")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    n_minutes = args.days * MINUTES_PER_DAY
    rng = np.random.default_rng(0)
    family = synthetic_family(rng, args.series, n_minutes)
    timestamps = START_EPOCH + 60 * np.arange(n_minutes)
    timings: dict[str, float] = {}
    alerts: dict[str, int] = {}

    def timed(name: str, run: object) -> None:
        started = time.perf_counter()
        result = run()  # type: ignore[operator]
        timings[name] = round(time.perf_counter() - started, 3)
        alerts[name] = len(result.detections) if hasattr(result, "detections") else 0

    timed("latency", lambda: detect_batch(family["latency"], timestamps, "latency", counts=family["calls"]))
    timed(
        "error_rate",
        lambda: detect_batch(
            family["error_rate"], timestamps, "error_rate", counts=family["calls"], events=family["errors"]
        ),
    )
    timed("volume", lambda: detect_batch(family["calls"], timestamps, "volume"))
    timed("cost_per_call", lambda: detect_batch(family["cost"], timestamps, "cost_per_call", counts=family["calls"]))
    timed("tokens", lambda: detect_batch(family["tokens"], timestamps, "tokens", counts=family["calls"]))
    joint = np.stack(
        [family["latency"], family["error_rate"], family["cost"], family["tokens"], family["calls"]], axis=-1
    )
    train_until = n_minutes - 60
    timed("isolation_forest_last_hour", lambda: joint_scores(joint, train_until=train_until, score_from=train_until))
    sweep_total = round(sum(timings.values()), 3)

    started = time.perf_counter()
    joint_scores(joint, train_until=n_minutes - MINUTES_PER_DAY, score_from=0)
    full_forest = round(time.perf_counter() - started, 3)

    points = args.series * n_minutes
    report = {
        "benchmark": "detector_sweep",
        "series": args.series,
        "minutes_per_series": n_minutes,
        "points_per_metric": points,
        "seconds_by_family": timings,
        "sweep_seconds": sweep_total,
        "budget_seconds": args.budget,
        "within_budget": sweep_total <= args.budget,
        "isolation_forest_all_rows_seconds": full_forest,
        "alerts_on_clean_data": alerts,
        # Timings on a shared machine are only comparable at similar load; record it with them.
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }
    print("| family | seconds | alerts (clean data) |\n|---|---:|---:|")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.2f} | {alerts[name]} |")
    print(
        f"\n**Sweep**: {args.series} series x {n_minutes} minutes ({points / 1e6:.1f}M points per metric, "
        f"5 metric families + joint forest) in {sweep_total:.2f} s on one core (budget {args.budget:.0f} s). "
        f"Scoring every row with the forest instead of the newest hour: {full_forest:.2f} s. "
        f"Load average at end: {report['load_average_1m_at_end']} on {report['cpu_count']} CPUs."
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["within_budget"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
