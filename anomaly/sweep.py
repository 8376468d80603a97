"""One detector sweep for one project: rollups → the stats core's ``detect_batch`` → the alert service.

Each enabled detector kind maps to a metric built from one or two rollup families (loaded once per grouping, one
ClickHouse query per family for every series). The detector replays the whole window (7 days by default) so
baselines, hysteresis and cooldown are the same as in the backtest; the sweep then reconciles the *current*
state of each series with its alert: an open episode keeps (or opens) the alert, a closed episode or none
resolves it. Re-running a sweep for the same minute changes nothing (fingerprint dedup).

The ``multivariate`` kind (off by default) scores the joint vector of latency, error rate, cost and tokens per
call and volume with an IsolationForest fitted at most hourly per project in this process and reused every
minute to score the newest window only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from django.utils import timezone

from anomaly import alerts
from anomaly.detectors import (
    JOINT_FEATURES,
    AlertPolicy,
    DetectionResult,
    Episode,
    JointModel,
    JointScores,
    detect_batch,
    fit_joint_model,
    joint_scores,
)
from anomaly.detectors.alerts import decide_alerts
from anomaly.detectors.evidence import epoch_to_datetime
from anomaly.models import OPEN_STATES, Alert, DetectorConfig, DetectorKind
from anomaly.rollups import Family, Grouping, SeriesMatrix, SettledCache, Window, load_series, settled_cache
from anomaly.series import safe_ratio
from controlplane.models import Project

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Built = tuple[FloatArray, FloatArray | None, FloatArray | None]  # values, counts, events

DEFAULT_WINDOW_MINUTES = 7 * 1440
EVIDENCE_POINTS = 240  # minutes of observed/expected/band stored with a detection for the chart
# Baselines use the whole window; only the newest minutes are scored (plus the detectors' own warm-up), which is
# what a per-minute job needs and a fraction of the work of replaying a week. An incident can start inside it.
DEFAULT_SCORE_MINUTES = 360


def _calls(c: dict[str, FloatArray]) -> FloatArray:
    return np.nan_to_num(c["calls"], nan=0.0)


def _volume(c: dict[str, FloatArray]) -> FloatArray:
    """Calls per minute, zero where a series had no calls, unknown before its first call (a new route)."""
    calls = _calls(c)
    seen = calls > 0
    first = np.where(seen.any(axis=1), seen.argmax(axis=1), calls.shape[1])
    return np.where(np.arange(calls.shape[1])[None, :] >= first[:, None], calls, np.nan)


def _where_calls(c: dict[str, FloatArray], values: FloatArray) -> FloatArray:
    return np.where(_calls(c) > 0, values, np.nan)


@dataclass(frozen=True)
class MetricSpec:
    kind: DetectorKind
    metric: str  # the stats core's MetricKind
    families: frozenset[Family]
    build: Callable[[dict[str, FloatArray]], Built]
    label: str


SPECS: dict[DetectorKind, MetricSpec] = {
    spec.kind: spec
    for spec in [
        MetricSpec(DetectorKind.LATENCY_P95, "latency", frozenset({Family.TRAFFIC, Family.LATENCY}),
                   lambda c: (_where_calls(c, c["latency_p95"]), _calls(c), None), "latency p95"),
        MetricSpec(DetectorKind.LATENCY_P99, "latency", frozenset({Family.TRAFFIC, Family.LATENCY}),
                   lambda c: (_where_calls(c, c["latency_p99"]), _calls(c), None), "latency p99"),
        MetricSpec(DetectorKind.TTFT_P95, "ttft", frozenset({Family.TRAFFIC, Family.LATENCY}),
                   lambda c: (np.where(np.nan_to_num(c["streamed"]) > 0, c["ttft_p95"], np.nan),
                              np.nan_to_num(c["streamed"]), None), "time to first token p95"),
        MetricSpec(DetectorKind.OUTPUT_TPS, "output_tokens_per_second", frozenset({Family.TRAFFIC}),
                   lambda c: (safe_ratio(c["output_tokens"], c["duration_ms"] / 1000.0), _calls(c), None),
                   "output tokens per second"),
        MetricSpec(DetectorKind.ERROR_RATE, "error_rate", frozenset({Family.TRAFFIC}),
                   lambda c: (safe_ratio(c["errors"], c["calls"]), _calls(c), np.nan_to_num(c["errors"])),
                   "error rate"),
        MetricSpec(DetectorKind.COST_PER_MINUTE, "cost", frozenset({Family.TRAFFIC}),
                   lambda c: (_where_calls(c, c["cost"]), _calls(c), None), "cost per minute"),
        MetricSpec(DetectorKind.COST_PER_CALL, "cost_per_call", frozenset({Family.TRAFFIC}),
                   lambda c: (safe_ratio(c["cost"], c["calls"]), _calls(c), None), "cost per call"),
        MetricSpec(DetectorKind.TOKENS_PER_CALL, "tokens", frozenset({Family.TRAFFIC}),
                   lambda c: (safe_ratio(c["input_tokens"] + c["output_tokens"], c["calls"]), _calls(c), None),
                   "tokens per call"),
        MetricSpec(DetectorKind.VOLUME, "volume", frozenset({Family.TRAFFIC}),
                   lambda c: (_volume(c), None, None), "call volume"),
        MetricSpec(DetectorKind.UNPRICED_SHARE, "unpriced_share", frozenset({Family.TRAFFIC}),
                   lambda c: (safe_ratio(c["unpriced"], c["calls"]), _calls(c), np.nan_to_num(c["unpriced"])),
                   "unpriced share"),
    ]
}

JOINT_FAMILIES = frozenset({Family.TRAFFIC, Family.LATENCY})
JOINT_REFIT = timedelta(hours=1)
_JOINT_MODELS_MAX = 256  # projects whose fitted forest this process keeps


def joint_features(columns: dict[str, FloatArray]) -> FloatArray:
    """(series, minutes, JOINT_FEATURES) for the multivariate detector, NaN where a minute had no calls."""
    calls = _calls(columns)
    return np.stack([
        _where_calls(columns, columns["latency_p95"]),
        safe_ratio(columns["errors"], columns["calls"]),
        safe_ratio(columns["cost"], columns["calls"]),
        safe_ratio(columns["input_tokens"] + columns["output_tokens"], columns["calls"]),
        np.where(calls > 0, calls, np.nan),
    ], axis=-1)


# Kinds that are off until someone turns them on (noisy for most projects, or run by another job).
DEFAULT_DISABLED = {DetectorKind.LATENCY_P99, DetectorKind.UNPRICED_SHARE, DetectorKind.MULTIVARIATE}


def configs_for(project: Project) -> dict[str, DetectorConfig]:
    """Every detector kind's config for the project, creating missing rows with defaults."""
    existing = {c.kind: c for c in DetectorConfig.objects.filter(project=project)}
    missing = [
        DetectorConfig(project=project, kind=kind, enabled=kind not in DEFAULT_DISABLED)
        for kind in DetectorKind.values
        if kind not in existing
    ]
    if missing:
        DetectorConfig.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {c.kind: c for c in DetectorConfig.objects.filter(project=project)}
    return existing


@dataclass
class SweepReport:
    project: str
    series: dict[str, int] = field(default_factory=dict)
    detectors_run: int = 0
    open_episodes: int = 0
    alerts_open: int = 0
    resolved: int = 0
    failures: list[str] = field(default_factory=list)
    renotified: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase, for logs and the benchmark


def sweep_project(
    project: Project,
    *,
    now: datetime | None = None,
    window_minutes: int = DEFAULT_WINDOW_MINUTES,
    score_minutes: int | None = DEFAULT_SCORE_MINUTES,
    groupings: tuple[Grouping, ...] = (Grouping.ROUTE_VERSION, Grouping.SERVICE),
    cache: SettledCache | None = settled_cache,
) -> SweepReport:
    """Run every enabled periodic detector over the project's rollups and reconcile alerts.

    ``cache`` keeps the settled minutes of the rollup matrices between sweeps in this process (``None``: query
    the whole window every time); either way the detectors see the same matrices.
    """
    now = now or timezone.now()
    window = Window.ending_now(window_minutes, now)
    report = SweepReport(project.slug)
    configs = configs_for(project)
    enabled = [SPECS[DetectorKind(k)] for k, c in configs.items() if c.enabled and DetectorKind(k) in SPECS]
    open_alerts = {a.fingerprint: a for a in Alert.objects.filter(project=project, state__in=OPEN_STATES)}
    joint = configs.get(DetectorKind.MULTIVARIATE)
    joint_on = joint is not None and joint.enabled
    if enabled:
        families = set().union(JOINT_FAMILIES if joint_on else (), *(spec.families for spec in enabled))
        began = time.perf_counter()
        matrices = [load_series(project.tenant_id, grouping, window, families, cache) for grouping in groupings]
        report.series = {m.grouping.value: len(m) for m in matrices}
        # Every grouping shares the grid, so each detector runs once over all of them (its time loop is the cost).
        batch = _stack(matrices)
        report.seconds["rollups"] = time.perf_counter() - began
        began = time.perf_counter()
        for spec in enabled:
            _run_detector(project, spec, configs[spec.kind], batch, open_alerts, report, now, score_minutes)
        report.seconds["detectors"] = time.perf_counter() - began
    if joint is not None and joint_on:
        if not enabled:  # the joint detector reads the same families; load them if nothing else did
            matrices = [load_series(project.tenant_id, g, window, set(JOINT_FAMILIES), cache) for g in groupings]
            report.series = {m.grouping.value: len(m) for m in matrices}
            batch = _stack(matrices)
        began = time.perf_counter()
        _run_joint(project, joint, batch, open_alerts, report, now, score_minutes or DEFAULT_SCORE_MINUTES)
        report.seconds["joint"] = time.perf_counter() - began
    report.renotified = alerts.renotify_due(project, now=now)
    return report


@dataclass
class _Batch:
    keys: list[dict[str, str]]  # series labels including their "grouping"
    total_calls: FloatArray
    columns: dict[str, FloatArray]
    timestamps: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.keys)


def _stack(matrices: list[SeriesMatrix]) -> _Batch:
    keys = [{**key, "grouping": m.grouping.value} for m in matrices for key in m.keys]
    names = set().union(*(m.columns for m in matrices))
    width = matrices[0].window.minutes
    columns = {
        name: np.vstack([m.columns.get(name, np.full((len(m), width), np.nan)) for m in matrices])
        if keys else np.zeros((0, width))
        for name in names
    }
    total = np.concatenate([m.total_calls for m in matrices]) if keys else np.zeros(0)
    return _Batch(keys, total, columns, matrices[0].timestamps)


def _run_detector(
    project: Project,
    spec: MetricSpec,
    config: DetectorConfig,
    matrix: _Batch,
    open_alerts: dict[str, Alert],
    report: SweepReport,
    now: datetime,
    score_minutes: int | None,
) -> None:
    if len(matrix) == 0:
        return
    try:
        values, counts, events = spec.build(matrix.columns)
        quiet = matrix.total_calls < max(config.min_calls, 1)
        values = values.copy()
        values[quiet] = np.nan
        result = detect_batch(
            values,
            matrix.timestamps,
            spec.metric,
            counts=counts,
            events=events,
            sensitivity=min(max(config.sensitivity, 0.0), 1.0),
            policy=AlertPolicy(cooldown=config.cooldown_minutes),
            score_from=None if score_minutes is None else max(values.shape[1] - score_minutes, 0),
        )
    except Exception as exc:  # one detector's failure must not stop the others
        logger.exception("detector %s failed for project %s", spec.kind, project.slug)
        report.failures.append(f"{spec.kind}: {type(exc).__name__}: {exc}")
        return
    report.detectors_run += 1
    latest: dict[int, tuple[Episode, int]] = {}
    for i, detection in enumerate(result.detections):
        if detection.series not in latest or detection.episode.start > latest[detection.series][0].start:
            latest[detection.series] = (detection.episode, i)
    for row, series_key in enumerate(matrix.keys):
        fp = alerts.fingerprint(project, spec.kind, series_key)
        found = latest.get(row)
        try:
            if found is not None and found[0].is_open:
                report.open_episodes += 1
                obs = _observation(project, spec, config, series_key, result, found[1])
                if alerts.observe(obs, now=now) is not None:
                    report.alerts_open += 1
            elif fp in open_alerts and open_alerts[fp].detector == spec.kind:
                alerts.auto_resolve(open_alerts[fp], now=now, reason=f"{spec.label} back within its band")
                report.resolved += 1
        except Exception as exc:
            logger.exception("alert update failed for %s %s", spec.kind, series_key)
            report.failures.append(f"{spec.kind}/{series_key}: {type(exc).__name__}: {exc}")


def _observation(
    project: Project,
    spec: MetricSpec,
    config: DetectorConfig,
    series_key: dict[str, str],
    result: DetectionResult,
    index: int,
) -> alerts.Observation:
    detection = result.detections[index]
    evidence = detection.evidence
    episode = detection.episode
    method = next((m for m in result.methods if m.method == evidence.method), result.methods[0])
    row = detection.series
    stop = result.timestamps.size
    first = max(0, min(episode.start - 60, stop - EVIDENCE_POINTS))
    span = (row, slice(first, stop))
    columns = [method.observed[span], method.expected(span), method.lower(span), method.upper(span)]
    points = [
        [int(result.timestamps[first + i]), *(_num(col[i]) for col in columns)] for i in range(stop - first)
    ]
    where = ", ".join(f"{k}={v}" for k, v in series_key.items() if k != "grouping" and v)
    return alerts.Observation(
        project=project,
        detector=spec.kind,
        series_key=series_key,
        title=f"{spec.label} anomaly on {where or 'unnamed series'}",
        score=float(max(evidence.score, episode.peak_severity)),
        episode_started_at=epoch_to_datetime(int(result.timestamps[episode.start])),
        metric=str(spec.metric),
        method=evidence.method,
        window_start=evidence.window_start,
        window_end=epoch_to_datetime(int(result.timestamps[-1])),
        observed=_num(evidence.observed),
        expected=_num(evidence.expected),
        lower=_num(evidence.lower),
        upper=_num(evidence.upper),
        details=dict(evidence.details),
        points=points,
        cooldown_minutes=config.cooldown_minutes,
        renotify_minutes=config.renotify_minutes,
    )


def _num(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


@dataclass
class _FittedJoint:
    fitted_at: datetime
    series: tuple[tuple[tuple[str, str], ...], ...]
    model: JointModel


# Per-process: a worker refits at most hourly per project (or when its series change) and otherwise only scores.
_joint_models: dict[str, _FittedJoint] = {}


def _joint_model(project: Project, matrix: _Batch, now: datetime, score_minutes: int) -> JointModel:
    series = tuple(tuple(sorted(k.items())) for k in matrix.keys)
    cached = _joint_models.get(project.tenant_id)
    if cached is not None and cached.series == series and timedelta(0) <= now - cached.fitted_at < JOINT_REFIT:
        return cached.model
    features = joint_features(matrix.columns)
    # The baseline is everything before the scored window, so an incident in progress does not train the forest.
    model = fit_joint_model(features, train_until=max(features.shape[1] - score_minutes, 0))
    if len(_joint_models) >= _JOINT_MODELS_MAX and project.tenant_id not in _joint_models:
        _joint_models.pop(next(iter(_joint_models)))
    _joint_models[project.tenant_id] = _FittedJoint(now, series, model)
    return model


def _run_joint(
    project: Project,
    config: DetectorConfig,
    matrix: _Batch,
    open_alerts: dict[str, Alert],
    report: SweepReport,
    now: datetime,
    score_minutes: int,
) -> None:
    """The multivariate IsolationForest over the newest ``score_minutes`` of every series, one alert per series."""
    kind = DetectorKind.MULTIVARIATE
    if len(matrix) == 0:
        return
    try:
        model = _joint_model(project, matrix, now, score_minutes)
        tail = {name: col[:, -score_minutes:] for name, col in matrix.columns.items()}
        features = joint_features(tail)
        quiet = matrix.total_calls < max(config.min_calls, 1)
        features[quiet] = np.nan
        scored = joint_scores(features, train_until=0, model=model,
                              sensitivity=min(max(config.sensitivity, 0.0), 1.0))
        episodes = decide_alerts(scored.scores.severity, AlertPolicy(cooldown=config.cooldown_minutes))
    except Exception as exc:
        logger.exception("joint detector failed for project %s", project.slug)
        report.failures.append(f"{kind}: {type(exc).__name__}: {exc}")
        return
    report.detectors_run += 1
    latest: dict[int, Episode] = {}
    for found in episodes:
        if found.series not in latest or found.start > latest[found.series].start:
            latest[found.series] = found
    timestamps = matrix.timestamps[-features.shape[1]:]
    for row, series_key in enumerate(matrix.keys):
        fp = alerts.fingerprint(project, kind, series_key)
        episode = latest.get(row)
        try:
            if episode is not None and episode.is_open:
                report.open_episodes += 1
                obs = _joint_observation(project, config, series_key, scored, episode, timestamps, features)
                if alerts.observe(obs, now=now) is not None:
                    report.alerts_open += 1
            elif fp in open_alerts and open_alerts[fp].detector == kind:
                alerts.auto_resolve(open_alerts[fp], now=now, reason="joint metrics back to their usual mix")
                report.resolved += 1
        except Exception as exc:
            logger.exception("alert update failed for %s %s", kind, series_key)
            report.failures.append(f"{kind}/{series_key}: {type(exc).__name__}: {exc}")


def _joint_observation(
    project: Project,
    config: DetectorConfig,
    series_key: dict[str, str],
    scored: JointScores,
    episode: Episode,
    timestamps: npt.NDArray[np.int64],
    features: FloatArray,
) -> alerts.Observation:
    row, at = episode.series, episode.fired
    observed = scored.scores.observed[row]
    center = float(scored.scores.center[row, at])
    limit = center + float(scored.scores.half_width[row, at])
    z = scored.standardized[row, at]
    # Which metrics moved: the per-series robust z of each feature at the firing minute, largest first.
    moved = sorted(zip(scored.features, (float(v) for v in z), strict=True), key=lambda fz: -abs(fz[1]))
    first = max(0, timestamps.size - EVIDENCE_POINTS)
    points = [[int(timestamps[i]), _num(observed[i]), center, 0.0, limit] for i in range(first, timestamps.size)]
    where = ", ".join(f"{k}={v}" for k, v in series_key.items() if k != "grouping" and v)
    return alerts.Observation(
        project=project,
        detector=DetectorKind.MULTIVARIATE,
        series_key=series_key,
        title=f"joint metrics anomaly on {where or 'unnamed series'}",
        score=float(max(scored.scores.severity[row, at], episode.peak_severity)),
        episode_started_at=epoch_to_datetime(int(timestamps[episode.start])),
        metric="joint",
        method="isolation_forest",
        window_start=epoch_to_datetime(int(timestamps[episode.start])),
        window_end=epoch_to_datetime(int(timestamps[-1])),
        observed=_num(observed[at]),
        expected=center,
        lower=0.0,
        upper=limit,
        details={
            "features": {name: _num(features[row, at, i]) for i, name in enumerate(JOINT_FEATURES)},
            "standardized": dict(moved),
            "moved_most": [name for name, _ in moved[:2]],
        },
        points=points,
        cooldown_minutes=config.cooldown_minutes,
        renotify_minutes=config.renotify_minutes,
    )
