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
from anomaly.finalised import finalise_settled
from anomaly.models import OPEN_STATES, Alert, DetectorConfig, DetectorKind
from anomaly.rollups import (
    ERROR_PARENT,
    Family,
    Grouping,
    Only,
    SeriesMatrix,
    SettledCache,
    Window,
    fill_rows,
    labels_of,
    load_series,
    load_stacked,
    settled_cache,
)
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
    """Calls per minute, 0 where unknown. Counts are finite, so two passes do what ``np.nan_to_num``'s six do;
    infinities (never seen) still get its treatment."""
    calls = c["calls"]
    filled = np.where(np.isnan(calls), 0.0, calls)
    return filled if np.isfinite(filled).all() else np.nan_to_num(calls, nan=0.0)


def _volume(c: dict[str, FloatArray]) -> FloatArray:
    """Calls per minute, zero where a series had no calls, unknown before its first call (a new route)."""
    calls = _calls(c)
    seen = calls > 0
    first = np.where(seen.any(axis=1), seen.argmax(axis=1), calls.shape[1])
    return np.where(np.arange(calls.shape[1])[None, :] >= first[:, None], calls, np.nan)


def _where_calls(c: dict[str, FloatArray], values: FloatArray) -> FloatArray:
    return np.where(c["calls"] > 0, values, np.nan)  # unknown calls compare False, as 0 does


def _error_rate(c: dict[str, FloatArray]) -> Built:
    """Errors over calls with the binomial model's trials and events (sparse minutes: 0 errors of many calls)."""
    return safe_ratio(c["errors"], c["calls"]), _calls(c), np.nan_to_num(c["errors"])


@dataclass(frozen=True)
class MetricSpec:
    kind: DetectorKind
    metric: str  # the stats core's MetricKind
    families: frozenset[Family]
    build: Callable[[dict[str, FloatArray]], Built]
    label: str
    # Runs over the error-type series (one per series × frequent error type), not the series themselves.
    by_error_type: bool = False


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
        MetricSpec(DetectorKind.ERROR_RATE, "error_rate", frozenset({Family.TRAFFIC}), _error_rate, "error rate"),
        MetricSpec(DetectorKind.ERROR_RATE_BY_TYPE, "error_rate", frozenset({Family.TRAFFIC}), _error_rate,
                   "error rate", by_error_type=True),
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

    The window's settled minutes are first finalised into ``series_1m`` (only those not yet finalised, or changed
    by late spans), so the loads read them as floats. ``cache`` keeps the settled minutes of the rollup matrices
    between sweeps in this process (``None``: query the whole window every time); either way the detectors see
    the same matrices.
    """
    now = now or timezone.now()
    window = Window.ending_now(window_minutes, now)
    report = SweepReport(project.slug)
    configs = configs_for(project)
    enabled = [SPECS[DetectorKind(k)] for k, c in configs.items() if c.enabled and DetectorKind(k) in SPECS]
    open_alerts = {a.fingerprint: a for a in Alert.objects.filter(project=project, state__in=OPEN_STATES)}
    joint = configs.get(DetectorKind.MULTIVARIATE)
    joint_on = joint is not None and joint.enabled
    watched: dict[str, set[str]] = {}  # kind -> fingerprints of every series it looked at (kinds that ran)
    if enabled or joint_on:
        families = set().union(JOINT_FAMILIES if joint_on else (), *(spec.families for spec in enabled))
        began = time.perf_counter()
        settled_until = _finalise(project, window, cache)
        report.seconds["finalise"] = time.perf_counter() - began
        began = time.perf_counter()
        # Every grouping shares the grid, so each detector runs once over all of them (its time loop is the cost);
        # the groupings are loaded straight into the rows of that batch.
        matrices, stacked = load_stacked(project.tenant_id, groupings, window, families, cache,
                                         settled_until=settled_until)
        report.series = {m.grouping.value: len(m) for m in matrices}
        batch = batch_of(matrices, stacked, window.timestamps())
        by_type = batch
        if any(spec.by_error_type for spec in enabled):
            by_type = error_type_batch(project.tenant_id, matrices, window, cache, settled_until=settled_until)
            report.series["error_types"] = len(by_type)
        report.seconds["rollups"] = time.perf_counter() - began
        began = time.perf_counter()
        for spec in enabled:
            seen = _run_detector(project, spec, configs[spec.kind], by_type if spec.by_error_type else batch,
                                 open_alerts, report, now, score_minutes)
            if seen is not None:
                watched[spec.kind] = seen
        report.seconds["detectors"] = time.perf_counter() - began
        if joint is not None and joint_on:
            began = time.perf_counter()
            seen = _run_joint(project, joint, batch, open_alerts, report, now, score_minutes or DEFAULT_SCORE_MINUTES)
            if seen is not None:
                watched[DetectorKind.MULTIVARIATE] = seen
            report.seconds["joint"] = time.perf_counter() - began
    _resolve_unwatched(open_alerts, watched, {g.value for g in groupings}, report, now)
    report.renotified = alerts.renotify_due(project, now=now)
    return report


def _finalise(project: Project, window: Window, cache: SettledCache | None) -> datetime | None:
    """Finalise the window's settled minutes; where they end (None if finalising failed: the loads then
    re-aggregate the whole window, slower but the same matrices). Late spans in minutes the cache holds drop the
    project's cache entries."""
    try:
        finalised = finalise_settled(project.tenant_id, window)
    except Exception:
        logger.exception("could not finalise settled rollups for project %s", project.slug)
        return None
    if finalised.late_from is not None and cache is not None:
        cache.forget(project.tenant_id)
    return finalised.through


def _resolve_unwatched(open_alerts: dict[str, Alert], watched: dict[str, set[str]], groupings: set[str],
                       report: SweepReport, now: datetime) -> None:
    """Resolve open alerts whose series the detector no longer watches: the series left the window, an error type
    fell out of the top types, or the series key changed (alerts from before series were split by environment)."""
    for fp, alert in open_alerts.items():
        seen = watched.get(alert.detector)
        if seen is None or fp in seen or (alert.series_key or {}).get("grouping") not in groupings:
            continue
        try:
            alerts.auto_resolve(alert, now=now, reason="series no longer watched")
            report.resolved += 1
        except Exception as exc:
            logger.exception("could not resolve unwatched alert %s", alert.pk)
            report.failures.append(f"{alert.detector}/{alert.series_key}: {type(exc).__name__}: {exc}")


@dataclass
class Batch:
    keys: list[dict[str, str]]  # series labels including their "grouping"
    total_calls: FloatArray
    columns: dict[str, FloatArray]
    timestamps: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.keys)


def batch_of(matrices: list[SeriesMatrix], columns: dict[str, FloatArray],
             timestamps: npt.NDArray[np.int64]) -> Batch:
    """The batch over ``columns`` (the matrices' rows one grouping after the other), each key tagged with its
    grouping."""
    keys = [{**key, "grouping": m.grouping.value} for m in matrices for key in m.keys]
    total = np.concatenate([m.total_calls for m in matrices]) if keys else np.zeros(0)
    return Batch(keys, total, columns, timestamps)


def stack_matrices(matrices: list[SeriesMatrix]) -> Batch:
    """Series of several groupings on their shared grid as one batch (copies; the sweep loads straight into
    one with :func:`anomaly.rollups.load_stacked`)."""
    rows = sum(len(m) for m in matrices)
    width = matrices[0].window.minutes
    columns = {name: np.empty((rows, width)) for name in set().union(*(m.columns for m in matrices))}
    row = 0
    for m in matrices:
        fill_rows({name: column[row:row + len(m)] for name, column in columns.items()}, m)
        row += len(m)
    return batch_of(matrices, columns, matrices[0].timestamps)


_ERROR_GROUPING = {parent: child for child, parent in ERROR_PARENT.items()}


def error_type_batch(tenant_id: str, parents: list[SeriesMatrix], window: Window,
                     cache: SettledCache | None, only: Only = (), settled_until: datetime | None = None) -> Batch:
    """One row per series × frequent error type: that type's errors over the parent series' calls.

    Minutes where the parent had calls but no error of the type are 0 errors (the zero-inflated part the binomial
    test expects); minutes without calls stay unknown. The series key is the parent's plus ``error_type``.
    """
    keys: list[dict[str, str]] = []
    calls: list[FloatArray] = []
    errors: list[FloatArray] = []
    totals: list[FloatArray] = []
    for parent in parents:
        child = load_series(tenant_id, _ERROR_GROUPING[parent.grouping], window, {Family.ERROR_TYPES}, cache, only,
                            settled_until)
        names = labels_of(parent.grouping)
        row_of = {tuple(key[n] for n in names): i for i, key in enumerate(parent.keys)}
        pairs = [(i, row_of.get(tuple(key[n] for n in names))) for i, key in enumerate(child.keys)]
        rows = np.array([i for i, p in pairs if p is not None], dtype=np.int64)
        parent_rows = np.array([p for _, p in pairs if p is not None], dtype=np.int64)
        keys += [{**child.keys[i], "grouping": parent.grouping.value} for i in rows]
        parent_calls = parent.columns["calls"][parent_rows]
        calls.append(parent_calls)
        errors.append(np.where(np.isnan(parent_calls), np.nan, np.nan_to_num(child.columns["type_errors"][rows])))
        totals.append(parent.total_calls[parent_rows])
    width = window.minutes
    return Batch(keys, np.concatenate(totals) if keys else np.zeros(0),
                  {"calls": np.vstack(calls) if keys else np.zeros((0, width)),
                   "errors": np.vstack(errors) if keys else np.zeros((0, width))},
                  parents[0].timestamps)


def detect_spec(spec: MetricSpec, config: DetectorConfig, matrix: Batch, score_minutes: int | None) -> DetectionResult:
    """The production detection for one kind over a batch: the spec's metric, the volume guard, the config's
    sensitivity and cooldown, then ``detect_batch`` (what the backtest runs). ``score_minutes=None`` scores every
    minute (previews); the periodic sweep scores only the newest."""
    values, counts, events = spec.build(matrix.columns)
    quiet = matrix.total_calls < max(config.min_calls, 1)
    values = values.copy()
    values[quiet] = np.nan
    return detect_batch(
        values,
        matrix.timestamps,
        spec.metric,
        counts=counts,
        events=events,
        sensitivity=min(max(config.sensitivity, 0.0), 1.0),
        policy=AlertPolicy(cooldown=config.cooldown_minutes),
        score_from=None if score_minutes is None else max(values.shape[1] - score_minutes, 0),
    )


def _run_detector(
    project: Project,
    spec: MetricSpec,
    config: DetectorConfig,
    matrix: Batch,
    open_alerts: dict[str, Alert],
    report: SweepReport,
    now: datetime,
    score_minutes: int | None,
) -> set[str] | None:
    """Detect over every row of ``matrix`` and reconcile each row's alert; the fingerprints looked at (None: the
    detector failed, so nothing may be concluded about its alerts)."""
    if len(matrix) == 0:
        return set()
    try:
        result = detect_spec(spec, config, matrix, score_minutes)
    except Exception as exc:  # one detector's failure must not stop the others
        logger.exception("detector %s failed for project %s", spec.kind, project.slug)
        report.failures.append(f"{spec.kind}: {type(exc).__name__}: {exc}")
        return None
    report.detectors_run += 1
    seen: set[str] = set()
    latest: dict[int, tuple[Episode, int]] = {}
    for i, detection in enumerate(result.detections):
        if detection.series not in latest or detection.episode.start > latest[detection.series][0].start:
            latest[detection.series] = (detection.episode, i)
    for row, series_key in enumerate(matrix.keys):
        fp = alerts.fingerprint(project, spec.kind, series_key)
        seen.add(fp)
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
    return seen


def _where(series_key: dict[str, str], *, skip: tuple[str, ...] = ("grouping",)) -> str:
    return ", ".join(f"{k}={v}" for k, v in series_key.items() if k not in skip and v) or "unnamed series"


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
    error_type = series_key.get("error_type") if spec.by_error_type else None
    label = f"{spec.label} ({error_type})" if error_type else spec.label
    details = dict(evidence.details)
    if error_type:
        details["error_type"] = error_type
    return alerts.Observation(
        project=project,
        detector=spec.kind,
        series_key=series_key,
        title=f"{label} anomaly on {_where(series_key, skip=('grouping', 'error_type'))}",
        score=float(max(evidence.score, episode.peak_severity)),
        episode_started_at=epoch_to_datetime(int(result.timestamps[episode.start])),
        metric=f"{spec.metric}:{error_type}" if error_type else str(spec.metric),
        method=evidence.method,
        window_start=evidence.window_start,
        window_end=epoch_to_datetime(int(result.timestamps[-1])),
        observed=_num(evidence.observed),
        expected=_num(evidence.expected),
        lower=_num(evidence.lower),
        upper=_num(evidence.upper),
        details=details,
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


def _joint_model(project: Project, matrix: Batch, now: datetime, score_minutes: int) -> JointModel:
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
    matrix: Batch,
    open_alerts: dict[str, Alert],
    report: SweepReport,
    now: datetime,
    score_minutes: int,
) -> set[str] | None:
    """The multivariate IsolationForest over the newest ``score_minutes`` of every series, one alert per series."""
    kind = DetectorKind.MULTIVARIATE
    if len(matrix) == 0:
        return set()
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
        return None
    report.detectors_run += 1
    seen: set[str] = set()
    latest: dict[int, Episode] = {}
    for found in episodes:
        if found.series not in latest or found.start > latest[found.series].start:
            latest[found.series] = found
    timestamps = matrix.timestamps[-features.shape[1]:]
    for row, series_key in enumerate(matrix.keys):
        fp = alerts.fingerprint(project, kind, series_key)
        seen.add(fp)
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
    return seen


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
    return alerts.Observation(
        project=project,
        detector=DetectorKind.MULTIVARIATE,
        series_key=series_key,
        title=f"joint metrics anomaly on {_where(series_key)}",
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
