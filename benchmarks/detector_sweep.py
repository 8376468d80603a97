"""Speed benchmark: the detector sweep over 1,000 series x 7 days of minute rollups, on one core.

Production loads one metric family for every series of a project in one ClickHouse query (7 days of
minute rollups, 10M points per family at 1,000 series) and hands the (series x minutes) matrix to
``detect_batch``. This benchmark does the same with synthetic matrices and times, in one process pinned
to one core (run it under ``taskset -c 0``; BLAS/OpenMP pools are pinned to one thread here):

**Per-minute production sweep** (the budgeted figure, ``sweep_seconds``: best wall time of
``--repeat`` runs, each listed in ``sweep_runs_wall_seconds``, with process CPU time beside it). For
each of the five families (latency p95; error rate with call and error counts; call volume; cost per
call; tokens per call): ``detect_batch(..., score_from=T - 60)``, i.e. baselines from all 7 days,
scores for the newest hour plus the detector's 6 h warm-up, alert episodes and evidence. Then the
joint IsolationForest scores the newest hour of every series with a model fitted earlier and cached
(``joint_scores(model=...)``). Input conversion (NaN/inf cleaning, transforms over the whole 7 days)
is included; loading from ClickHouse is not.

**Hourly refit** (``forest_fit_seconds``): ``fit_joint_model`` on the first 7 days minus the last hour,
which the job does once an hour and caches; reported separately and as ``worst_minute_seconds`` (a
sweep that also refits).

**Full recompute** (``full_recompute_seconds_by_family``): every bucket of all 7 days scored, as a
backtest or the first sweep after a restart would; the forest here scores all 10M rows.

    python benchmarks/detector_sweep.py [--series 1000] [--days 7] [--repeat 3] [--skip-full] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# One core, as the target says: pin BLAS/OpenMP pools before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anomaly.detectors import (  # noqa: E402
    JointModel,
    JointScores,
    decide_alerts,
    detect_batch,
    fit_joint_model,
    joint_scores,
)

MINUTES_PER_DAY = 1440
START_EPOCH = 1_735_689_600
RESULTS = Path(__file__).resolve().parent / "results"


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


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--window", type=int, default=60, help="newest buckets scored by the per-minute sweep")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds allowed for the sweep")
    parser.add_argument("--repeat", type=int, default=3, help="per-minute sweeps to run; the best is reported")
    parser.add_argument("--skip-full", action="store_true", help="skip the (slow) full-recompute timings")
    parser.add_argument("--out", type=Path, default=RESULTS / "detector_sweep.json")
    args = parser.parse_args([] if argv is None else argv)

    if hasattr(os, "sched_setaffinity"):
        # One core even when run through benchmarks.run rather than under `taskset -c 0`.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    n_minutes = args.days * MINUTES_PER_DAY
    rng = np.random.default_rng(0)
    family = synthetic_family(rng, args.series, n_minutes)
    timestamps = START_EPOCH + 60 * np.arange(n_minutes)
    joint = np.stack(
        [family["latency"], family["error_rate"], family["cost"], family["tokens"], family["calls"]], axis=-1
    )
    score_from = n_minutes - args.window

    def families(score_from: int | None) -> dict[str, Callable[[], object]]:
        calls = family["calls"]
        return {
            "latency": lambda: detect_batch(
                family["latency"], timestamps, "latency", counts=calls, score_from=score_from
            ),
            "error_rate": lambda: detect_batch(
                family["error_rate"],
                timestamps,
                "error_rate",
                counts=calls,
                events=family["errors"],
                score_from=score_from,
            ),
            "volume": lambda: detect_batch(calls, timestamps, "volume", score_from=score_from),
            "cost_per_call": lambda: detect_batch(
                family["cost"], timestamps, "cost_per_call", counts=calls, score_from=score_from
            ),
            "tokens": lambda: detect_batch(family["tokens"], timestamps, "tokens", counts=calls, score_from=score_from),
        }

    cpu: dict[str, float] = {}

    def timed(run: Callable[[], object], name: str = "") -> tuple[float, object]:
        started, cpu_started = time.perf_counter(), time.process_time()
        result = run()
        if name:
            cpu[name] = round(time.process_time() - cpu_started, 3)
        return round(time.perf_counter() - started, 3), result

    load_start = round(os.getloadavg()[0], 2)
    fit_seconds, model = timed(lambda: fit_joint_model(joint, train_until=score_from))
    cached = model if isinstance(model, JointModel) else None
    alerts: dict[str, int] = {}

    def sweep_once() -> tuple[dict[str, float], dict[str, float]]:
        """One per-minute sweep; returns wall and CPU seconds per family."""
        wall: dict[str, float] = {}
        cpu.clear()
        for name, run in families(score_from).items():
            wall[name], result = timed(run, name)
            alerts[name] = len(result.detections)  # type: ignore[attr-defined]
        wall["isolation_forest_cached_model"], joint_result = timed(
            lambda: joint_scores(joint, train_until=score_from, score_from=score_from, model=cached),
            "isolation_forest_cached_model",
        )
        assert isinstance(joint_result, JointScores)
        alerts["isolation_forest_cached_model"] = len(decide_alerts(joint_result.scores.severity))
        return wall, dict(cpu)

    # Repeated so one burst of load from other processes does not stand for the whole figure; all runs
    # are reported, the best one is the headline.
    runs = [sweep_once() for _ in range(max(1, args.repeat))]
    timings, sweep_cpu_by_family = min(runs, key=lambda r: sum(r[0].values()))
    sweep_total = round(sum(timings.values()), 3)
    sweep_cpu = round(sum(sweep_cpu_by_family.values()), 3)
    all_walls = [round(sum(w.values()), 3) for w, _ in runs]
    all_cpus = [round(sum(c.values()), 3) for _, c in runs]

    full: dict[str, float] = {}
    full_cpu: dict[str, float] = {}
    if not args.skip_full:
        cpu.clear()
        for name, run in families(None).items():
            full[name], _ = timed(run, name)
        full["isolation_forest_fit_and_all_rows"], _ = timed(
            lambda: joint_scores(joint, train_until=n_minutes - MINUTES_PER_DAY, score_from=0),
            "isolation_forest_fit_and_all_rows",
        )
        full_cpu = dict(cpu)

    points = args.series * n_minutes
    report: dict[str, object] = {
        "benchmark": "detector_sweep",
        "measures": (
            "per-minute sweep: 5 metric families via detect_batch(score_from=T-window) with 7-day baselines + "
            "IsolationForest scoring the window with an hourly-cached model; one process, one core, synthetic "
            "matrices already in memory (ClickHouse load not included)"
        ),
        "series": args.series,
        "minutes_per_series": n_minutes,
        "points_per_metric": points,
        "scored_window_minutes": args.window,
        "seconds_by_family": timings,
        "sweep_seconds": sweep_total,
        # CPU time of this process over the same calls: what one core needs when it is not shared. On a
        # loaded machine wall time also counts the time other processes held the core.
        "cpu_seconds_by_family": sweep_cpu_by_family,
        "sweep_cpu_seconds": sweep_cpu,
        "sweep_runs_wall_seconds": all_walls,
        "sweep_runs_cpu_seconds": all_cpus,
        "budget_seconds": args.budget,
        "within_budget": sweep_total <= args.budget,
        "within_budget_cpu": sweep_cpu <= args.budget,
        "forest_fit_seconds": fit_seconds,
        "worst_minute_seconds": round(sweep_total + fit_seconds, 3),
        "full_recompute_seconds_by_family": full,
        "full_recompute_seconds": round(sum(full.values()), 3) if full else None,
        "full_recompute_cpu_seconds_by_family": full_cpu,
        "full_recompute_cpu_seconds": round(sum(full_cpu.values()), 3) if full_cpu else None,
        "alerts_on_clean_data": alerts,
        # Timings on a shared machine are only comparable at similar load; record it with them.
        "load_average_1m_at_start": load_start,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
    }
    print(
        "| family | per-minute sweep s (wall) | per-minute sweep s (CPU) | full recompute s | alerts (clean data) |\n"
        "|---|---:|---:|---:|---:|"
    )
    for name, seconds in timings.items():
        full_name = "isolation_forest_fit_and_all_rows" if name.startswith("isolation") else name
        print(
            f"| {name} | {seconds:.2f} | {sweep_cpu_by_family[name]:.2f} | {full.get(full_name, float('nan')):.2f} "
            f"| {alerts[name]} |"
        )
    print(
        f"\n**Sweep**: {args.series} series x {n_minutes} minutes ({points / 1e6:.1f}M points per metric), newest "
        f"{args.window} min scored: {sweep_total:.2f} s wall / {sweep_cpu:.2f} s CPU on one core (budget "
        f"{args.budget:.0f} s); hourly forest refit "
        f"{fit_seconds:.2f} s; full recompute {report['full_recompute_seconds']} s wall / "
        f"{report['full_recompute_cpu_seconds']} s CPU. Sweep runs (wall): {all_walls}. Load average "
        f"{load_start} -> {report['load_average_1m_at_end']} on {report['cpu_count']} CPUs."
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    raise SystemExit(0 if main(sys.argv[1:])["within_budget"] else 1)
