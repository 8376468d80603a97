"""Detection-quality benchmark on labelled synthetic 1-minute series.

Each series covers 10 days: 3 days of history (as any route that has been live for a while has) and
7 evaluated days. Noise is what LLM rollups look like: daily seasonality in traffic and latency, a
random level per day, autocorrelated wander, p95 noise that grows when volume is low, isolated spikes,
over-dispersed call volume, and sparse errors. One incident is injected per labelled series; clean
series measure the false-alert rate. Detectors never see labels: they run through the same
``detect_batch`` and alert policy as production, and only the scoring below reads the labels.

Traffic per route (calls per minute at the daily mean, drawn log-uniformly per series, then x0.6-1.6
over the day): latency and cost routes 5-200, error-rate routes 1-150, volume routes 3-300. Half the
error-rate routes therefore see fewer than ~12 calls a minute, where a 10-30% error burst produces one
or two errors a minute: the report breaks time-to-detect down by the route's volume in the hour before
onset (``ttd_by_volume_band``) so the step-change median is not read as a promise for quiet routes.
Time-to-detect is minutes from onset to the end of the bucket in which the alert fired (1 = the first
minute of the incident).

    python benchmarks/detection_quality.py [--seed 7] [--out benchmarks/results/detection_quality.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anomaly.detectors import Sensitivity, detect_batch

MINUTES_PER_DAY = 1440
HISTORY_DAYS = 3
EVAL_DAYS = 7
N_MINUTES = (HISTORY_DAYS + EVAL_DAYS) * MINUTES_PER_DAY
START_EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z
# An alert up to this long after an incident ends still counts as catching it (a slow creep may be
# noticed late), not as a false alert.
GRACE_MINUTES = 30
STEP_INCIDENTS = ("latency_step", "error_burst", "cost_jump", "volume_drop")
# Calls per minute in the hour before onset: (label, lower bound inclusive, upper bound exclusive).
VOLUME_BANDS = (("<5/min", 0.0, 5.0), ("5-30/min", 5.0, 30.0), (">=30/min", 30.0, float("inf")))
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Incident:
    kind: str
    onset: int
    end: int  # exclusive


@dataclass
class Case:
    """One batch of same-metric series handed to the detector in one call."""

    name: str
    metric: str
    values: np.ndarray
    counts: np.ndarray | None
    events: np.ndarray | None
    incidents: list[Incident | None]


def _ar1(rng: np.random.Generator, shape: tuple[int, int], phi: float, sigma: float) -> np.ndarray:
    from scipy.signal import lfilter

    shocks = rng.normal(0.0, sigma * np.sqrt(1 - phi**2), size=shape)
    return lfilter([1.0], [1.0, -phi], shocks, axis=1)


def _daily(rng: np.random.Generator, n: int) -> np.ndarray:
    """A daily profile per series: one broad peak plus a smaller second one, random phase."""
    t = np.arange(N_MINUTES) / MINUTES_PER_DAY
    phase = rng.uniform(0, 1, size=(n, 1))
    return 0.8 * np.sin(2 * np.pi * (t - phase)) + 0.2 * np.sin(4 * np.pi * (t - phase) + 1.0)


def _day_levels(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    days = rng.normal(0.0, sigma, size=(n, HISTORY_DAYS + EVAL_DAYS))
    return np.repeat(days, MINUTES_PER_DAY, axis=1)


def _traffic(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """Calls per minute: seasonal, over-dispersed (gamma-Poisson) counts."""
    base = np.exp(rng.uniform(np.log(low), np.log(high), size=(n, 1)))
    rate = base * np.exp(0.5 * _daily(rng, n) + _day_levels(rng, n, 0.05) + _ar1(rng, (n, N_MINUTES), 0.9, 0.05))
    return rng.poisson(rng.gamma(20.0, rate / 20.0)).astype(float)


def _onset(rng: np.random.Generator, duration: int, latest_day: float = HISTORY_DAYS + EVAL_DAYS) -> int:
    first = HISTORY_DAYS * MINUTES_PER_DAY
    last = int(latest_day * MINUTES_PER_DAY) - duration - 1
    return int(rng.integers(first, last))


def _latency(rng: np.random.Generator, calls: np.ndarray) -> np.ndarray:
    n = calls.shape[0]
    base = np.log(rng.uniform(400, 4000, size=(n, 1)))
    volume_noise = 0.06 * np.sqrt(50.0 / np.maximum(calls, 1.0))
    log_p95 = (
        base
        + 0.15 * _daily(rng, n)
        + _day_levels(rng, n, 0.03)
        + _ar1(rng, (n, N_MINUTES), 0.7, 0.04)
        + rng.normal(size=(n, N_MINUTES)) * np.minimum(volume_noise, 0.3)
    )
    spikes = rng.random((n, N_MINUTES)) < 0.002  # isolated slow requests: must not page
    log_p95 += spikes * rng.uniform(0.3, 1.0, size=(n, N_MINUTES))
    out = np.exp(log_p95)
    out[calls == 0] = np.nan
    return out


def latency_case(rng: np.random.Generator, n: int, incident: str | None) -> Case:
    calls = _traffic(rng, n, 5, 200)
    p95 = _latency(rng, calls)
    labels: list[Incident | None] = []
    for i in range(n):
        if incident == "latency_step":
            duration = int(rng.integers(20, 120))
            onset = _onset(rng, duration)
            p95[i, onset : onset + duration] *= rng.uniform(1.8, 2.5)
            labels.append(Incident(incident, onset, onset + duration))
        elif incident == "slow_creep":
            ramp, hold = int(rng.integers(120, 240)), 30
            onset = _onset(rng, ramp + hold)
            target = np.log(rng.uniform(1.6, 2.2))
            shape = np.concatenate([np.linspace(0, target, ramp), np.full(hold, target)])
            p95[i, onset : onset + ramp + hold] *= np.exp(shape)
            labels.append(Incident(incident, onset, onset + ramp + hold))
        else:
            labels.append(None)
    return Case(incident or "clean_latency", "latency", p95, calls, None, labels)


def error_case(rng: np.random.Generator, n: int, incident: str | None) -> Case:
    calls = _traffic(rng, n, 1, 150)
    rate = np.exp(np.log(rng.uniform(0.002, 0.03, size=(n, 1))) + _ar1(rng, (n, N_MINUTES), 0.95, 0.2))
    labels: list[Incident | None] = []
    for i in range(n):
        if incident == "error_burst":
            duration = int(rng.integers(10, 40))
            onset = _onset(rng, duration)
            rate[i, onset : onset + duration] = rng.uniform(0.1, 0.3)
            labels.append(Incident(incident, onset, onset + duration))
        else:
            labels.append(None)
    errors = rng.binomial(calls.astype(int), np.clip(rate, 0, 1)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(calls > 0, errors / calls, np.nan)
    return Case(incident or "clean_error_rate", "error_rate", share, calls, errors, labels)


def cost_case(rng: np.random.Generator, n: int, incident: str | None) -> Case:
    calls = _traffic(rng, n, 5, 200)
    log_cost = (
        np.log(rng.uniform(0.0005, 0.05, size=(n, 1)))
        + 0.05 * _daily(rng, n)
        + _day_levels(rng, n, 0.02)
        + _ar1(rng, (n, N_MINUTES), 0.6, 0.03)
        + rng.normal(size=(n, N_MINUTES)) * np.minimum(0.25 / np.sqrt(np.maximum(calls, 1.0)), 0.25)
    )
    cost = np.exp(log_cost)
    labels: list[Incident | None] = []
    for i in range(n):
        if incident == "cost_jump":
            # A new model version ships and stays: the jump persists to the end of the data.
            onset = _onset(rng, 0, latest_day=HISTORY_DAYS + EVAL_DAYS - 0.1)
            onset = max(onset, (HISTORY_DAYS + EVAL_DAYS - 2) * MINUTES_PER_DAY + onset % MINUTES_PER_DAY)
            cost[i, onset:] *= rng.uniform(1.3, 1.8)
            labels.append(Incident(incident, onset, N_MINUTES))
        else:
            labels.append(None)
    cost[calls == 0] = np.nan
    return Case(incident or "clean_cost", "cost_per_call", cost, calls, None, labels)


def volume_case(rng: np.random.Generator, n: int, incident: str | None) -> Case:
    calls = _traffic(rng, n, 3, 300)
    labels: list[Incident | None] = []
    for i in range(n):
        if incident == "volume_drop":
            duration = int(rng.integers(20, 90))
            onset = _onset(rng, duration)
            kept = rng.uniform(0.0, 0.4)
            calls[i, onset : onset + duration] = rng.binomial(calls[i, onset : onset + duration].astype(int), kept)
            labels.append(Incident(incident, onset, onset + duration))
        else:
            labels.append(None)
    return Case(incident or "clean_volume", "volume", calls, None, None, labels)


def tokens_case(rng: np.random.Generator, n: int, incident: str | None) -> Case:
    calls = _traffic(rng, n, 5, 200)
    log_tokens = (
        np.log(rng.uniform(150, 1500, size=(n, 1)))
        + 0.08 * _daily(rng, n)
        + _day_levels(rng, n, 0.03)
        + _ar1(rng, (n, N_MINUTES), 0.6, 0.03)
        + rng.normal(size=(n, N_MINUTES)) * np.minimum(0.5 / np.sqrt(np.maximum(calls, 1.0)), 0.3)
    )
    tokens = np.exp(log_tokens)
    labels: list[Incident | None] = []
    for i in range(n):
        if incident == "output_length_drift":
            # Answers get longer over a few hours after a prompt or model change, then stay longer.
            ramp, hold = int(rng.integers(120, 360)), 60
            onset = _onset(rng, ramp + hold)
            target = np.log(rng.uniform(1.4, 1.8))
            shape = np.concatenate([np.linspace(0, target, ramp), np.full(hold, target)])
            tokens[i, onset : onset + ramp + hold] *= np.exp(shape)
            labels.append(Incident(incident, onset, onset + ramp + hold))
        else:
            labels.append(None)
    tokens[calls == 0] = np.nan
    return Case(incident or "clean_tokens", "tokens", tokens, calls, None, labels)


BUILDERS: dict[str, Callable[[np.random.Generator, int, str | None], Case]] = {
    "latency_step": latency_case,
    "slow_creep": latency_case,
    "error_burst": error_case,
    "cost_jump": cost_case,
    "volume_drop": volume_case,
    "output_length_drift": tokens_case,
}
CLEAN_BUILDERS = (latency_case, error_case, cost_case, volume_case, tokens_case)


def build_cases(seed: int, per_incident: int, clean_per_metric: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = [builder(rng, per_incident, kind) for kind, builder in BUILDERS.items()]
    cases += [builder(rng, clean_per_metric, None) for builder in CLEAN_BUILDERS]
    return cases


@dataclass
class CaseScore:
    name: str
    metric: str
    series: int
    incidents: int
    detected: int
    alerts: int
    true_alerts: int
    false_alerts: int
    ttd_minutes: list[int]
    # Per labelled incident: calls/min in the hour before onset and its time-to-detect (None = missed).
    onset_volume: list[float]
    incident_ttd: list[int | None]


def score_case(case: Case, sensitivity: Sensitivity) -> CaseScore:
    timestamps = START_EPOCH + 60 * np.arange(N_MINUTES)
    result = detect_batch(
        case.values, timestamps, case.metric, counts=case.counts, events=case.events, sensitivity=sensitivity
    )
    eval_start = HISTORY_DAYS * MINUTES_PER_DAY
    fired_by_series: dict[int, list[int]] = {}
    for episode in result.episodes:
        if episode.fired >= eval_start:
            fired_by_series.setdefault(episode.series, []).append(episode.fired)
    detected = true_alerts = false_alerts = 0
    ttd: list[int] = []
    onset_volume: list[float] = []
    incident_ttd: list[int | None] = []
    calls = case.counts if case.counts is not None else case.values
    for i, label in enumerate(case.incidents):
        fired = sorted(fired_by_series.get(i, []))
        if label is None:
            false_alerts += len(fired)
            continue
        hits = [f for f in fired if label.onset <= f < label.end + GRACE_MINUTES]
        true_alerts += len(hits)
        false_alerts += len(fired) - len(hits)
        onset_volume.append(round(float(np.nanmean(calls[i, label.onset - 60 : label.onset])), 1))
        incident_ttd.append(hits[0] - label.onset + 1 if hits else None)
        if hits:
            detected += 1
            ttd.append(hits[0] - label.onset + 1)
    n_incidents = sum(label is not None for label in case.incidents)
    alerts = sum(len(v) for v in fired_by_series.values())
    return CaseScore(
        case.name,
        case.metric,
        len(case.incidents),
        n_incidents,
        detected,
        alerts,
        true_alerts,
        false_alerts,
        ttd,
        onset_volume,
        incident_ttd,
    )


def volume_bands(scores: list[CaseScore]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Recall and median time-to-detect of each step incident type per traffic band before onset."""
    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for s in scores:
        if s.name not in STEP_INCIDENTS:
            continue
        out[s.name] = {}
        for band, lo, hi in VOLUME_BANDS:
            ttds = [t for v, t in zip(s.onset_volume, s.incident_ttd, strict=True) if lo <= v < hi]
            found = [t for t in ttds if t is not None]
            out[s.name][band] = {
                "incidents": len(ttds),
                "recall": round(len(found) / len(ttds), 3) if ttds else None,
                "median_ttd_minutes": float(np.median(found)) if found else None,
            }
    return out


def summarise(scores: list[CaseScore]) -> dict[str, object]:
    incidents = sum(s.incidents for s in scores)
    detected = sum(s.detected for s in scores)
    alerts = sum(s.alerts for s in scores)
    true_alerts = sum(s.true_alerts for s in scores)
    false_alerts = sum(s.false_alerts for s in scores)
    series = sum(s.series for s in scores)
    clean = [s for s in scores if s.incidents == 0]
    clean_series = sum(s.series for s in clean)
    step_ttd = [t for s in scores if s.name in STEP_INCIDENTS for t in s.ttd_minutes]
    weeks = EVAL_DAYS / 7
    return {
        "series": series,
        "incidents": incidents,
        "recall": detected / incidents if incidents else None,
        "precision": true_alerts / alerts if alerts else None,
        "false_alerts_per_series_week": false_alerts / (series * weeks),
        "clean_false_alerts_per_series_week": sum(s.false_alerts for s in clean) / (clean_series * weeks),
        "median_ttd_minutes_steps": float(np.median(step_ttd)) if step_ttd else None,
        "p90_ttd_minutes_steps": float(np.percentile(step_ttd, 90)) if step_ttd else None,
    }


def markdown(scores: list[CaseScore], summary: dict[str, object], elapsed: float) -> str:
    lines = [
        "| case | metric | series | incidents | recall | alerts | false alerts | false/series/week | median TTD min |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        recall = f"{s.detected / s.incidents:.2f}" if s.incidents else "-"
        ttd = f"{np.median(s.ttd_minutes):.0f}" if s.ttd_minutes else "-"
        lines.append(
            f"| {s.name} | {s.metric} | {s.series} | {s.incidents} | {recall} | {s.alerts} | {s.false_alerts} | "
            f"{s.false_alerts / (s.series * EVAL_DAYS / 7):.2f} | {ttd} |"
        )

    def fmt(key: str, pattern: str = "{:.3f}") -> str:
        value = summary[key]
        return "n/a" if value is None else pattern.format(value)

    lines += [
        "",
        f"**Overall**: recall {fmt('recall')}, precision {fmt('precision')}, "
        f"false alerts/series/week {fmt('false_alerts_per_series_week')} "
        f"(clean series only: {fmt('clean_false_alerts_per_series_week')}), "
        f"median time-to-detect for steps {fmt('median_ttd_minutes_steps', '{:.1f}')} min "
        f"(p90 {fmt('p90_ttd_minutes_steps', '{:.1f}')}); {elapsed:.1f} s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "detection_quality.json", help="JSON report path")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-incident", type=int, default=20, help="labelled series per incident type")
    parser.add_argument("--clean", type=int, default=20, help="clean series per metric")
    parser.add_argument("--sensitivity", default="medium")
    args = parser.parse_args([] if argv is None else argv)
    sensitivity: Sensitivity = args.sensitivity
    if sensitivity not in ("low", "medium", "high"):
        sensitivity = float(args.sensitivity)

    started = time.perf_counter()
    cases = build_cases(args.seed, args.per_incident, args.clean)
    scores = [score_case(case, sensitivity) for case in cases]
    elapsed = time.perf_counter() - started
    summary = summarise(scores)

    def number(key: str, missing: float) -> float:
        value = summary[key]
        return float(value) if isinstance(value, int | float) else missing

    targets = {
        "recall": number("recall", 0.0) >= 0.9,
        "false_alerts_per_series_week": number("false_alerts_per_series_week", 1e9) <= 1.0,
        "median_ttd_minutes_steps": number("median_ttd_minutes_steps", 1e9) <= 3.0,
    }
    bands = volume_bands(scores)
    report: dict[str, object] = {
        "benchmark": "detection_quality",
        "seed": args.seed,
        "sensitivity": args.sensitivity,
        "minutes_per_series": N_MINUTES,
        "history_days": HISTORY_DAYS,
        "evaluated_days": EVAL_DAYS,
        "grace_minutes": GRACE_MINUTES,
        "ttd_definition": "minutes from incident onset to the end of the bucket in which the alert fired",
        "summary": summary,
        "targets_met": targets,
        "ttd_by_volume_band": bands,
        "cases": [asdict(s) for s in scores],
        "elapsed_seconds": round(elapsed, 2),
    }
    print(markdown(scores, summary, elapsed))
    print("\n| step incident | " + " | ".join(f"{b} recall / median TTD" for b, _, _ in VOLUME_BANDS) + " |")
    print("|---|" + "---:|" * len(VOLUME_BANDS))
    for name, by_band in bands.items():
        cells = [
            f"{v['recall']} / {v['median_ttd_minutes']} (n={v['incidents']})" if v["incidents"] else "-"
            for v in by_band.values()
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("targets met: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in targets.items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    met = main(sys.argv[1:])["targets_met"]
    raise SystemExit(0 if isinstance(met, dict) and all(met.values()) else 1)
