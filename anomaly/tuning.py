"""Detector settings: validate and save them, and preview candidate settings on one series' real history.

The preview loads one route × model version (in one environment) from the rollups and runs the sweep's own
detection step (``sweep.detect_spec``: the spec's metric, the volume guard, sensitivity and cooldown, then
``detect_batch`` — what ``manage.py detect`` runs on a CSV) over every minute of the window, so the points it marks
are the points that would have paged with those settings. Nothing is saved by a preview.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from django.utils import timezone

from anomaly.models import DetectorConfig, DetectorKind
from anomaly.rollups import Grouping, SeriesLabelsQuery, Window, labels_of, load_series
from anomaly.sweep import SPECS, configs_for, detect_spec, error_type_batch, stack_matrices
from controlplane.models import Project

FloatArray = npt.NDArray[np.float64]

PREVIEW_DAYS = (1, 3, 7)
DEFAULT_PREVIEW_DAYS = 3
# What a settings form may change, with the bounds the sweep can honour.
EDITABLE = ("enabled", "sensitivity", "min_calls", "cooldown_minutes", "renotify_minutes")
_LIMITS = {"min_calls": (0, 1_000_000), "cooldown_minutes": (0, 7 * 1440), "renotify_minutes": (0, 7 * 1440)}


class SettingsError(ValueError):
    """A submitted setting is out of range or not a number."""


def parse_settings(data: dict[str, Any], base: DetectorConfig) -> dict[str, Any]:
    """Typed, range-checked values of the editable settings in ``data`` (missing ones keep ``base``'s)."""
    out: dict[str, Any] = {}
    for name in EDITABLE:
        raw = data.get(name)
        if name == "enabled":
            out[name] = base.enabled if raw is None else str(raw).lower() in ("on", "true", "1")
            continue
        if raw is None or raw == "":
            out[name] = getattr(base, name)
            continue
        try:
            value: float | int = float(raw) if name == "sensitivity" else int(str(raw))
        except (TypeError, ValueError):
            raise SettingsError(f"{name.replace('_', ' ')} must be a number") from None
        low, high = _LIMITS.get(name, (0.0, 1.0))
        if not (low <= value <= high) or value != value:  # NaN fails the comparison
            raise SettingsError(f"{name.replace('_', ' ')} must be between {low} and {high}")
        out[name] = value
    return out


def save_settings(config: DetectorConfig, values: dict[str, Any]) -> DetectorConfig:
    """Persist parsed settings (see :func:`parse_settings`); the next sweep uses them."""
    for name in EDITABLE:
        if name in values:
            setattr(config, name, values[name])
    config.save(update_fields=[*(n for n in EDITABLE if n in values), "updated_at"])
    return config


def previewable(kind: str) -> bool:
    return kind in SPECS


def editable_configs(project: Project) -> list[DetectorConfig]:
    """The periodic detectors (the ones the sweep runs and a preview can show), in their declared order."""
    configs = configs_for(project)
    order = {k: i for i, k in enumerate(DetectorKind.values)}
    return sorted((c for c in configs.values() if c.kind in SPECS or c.kind == DetectorKind.MULTIVARIATE),
                  key=lambda c: order[c.kind])


def series_choices(project: Project, *, days: int = DEFAULT_PREVIEW_DAYS, now: datetime | None = None
                   ) -> list[dict[str, str]]:
    """Every environment × route × model version with calls in the window, busiest first."""
    window = Window.ending_now(days * 1440, now or timezone.now())
    rows = SeriesLabelsQuery(project.tenant_id, Grouping.ROUTE_VERSION, window).run()
    return [labels for _h, labels, _calls in sorted(rows, key=lambda r: -r[2])]


@dataclass
class Preview:
    """One series' metric with the expected band and where alerts would have fired (epoch-second timestamps)."""

    kind: str
    label: str
    series: dict[str, str]
    timestamps: npt.NDArray[np.int64]
    observed: FloatArray
    expected: FloatArray
    lower: FloatArray
    upper: FloatArray
    alerts: list[int] = field(default_factory=list)  # indices where an alert fires (after cooldown/grouping)
    methods: list[str] = field(default_factory=list)
    error_types: list[str] = field(default_factory=list)  # the series' watched error types (by-type kind)

    @property
    def alert_times(self) -> list[int]:
        return [int(self.timestamps[i]) for i in self.alerts]


def preview(
    project: Project,
    kind: str,
    series: dict[str, str],
    settings: dict[str, Any],
    *,
    days: int = DEFAULT_PREVIEW_DAYS,
    error_type: str = "",
    now: datetime | None = None,
) -> Preview | None:
    """What ``kind`` with ``settings`` (see :func:`parse_settings`) would have done on ``series`` over the last
    ``days``; None when the series has no calls in the window (or, for error types, none of that type)."""
    spec = SPECS[DetectorKind(kind)]
    config = replace_config(configs_for(project)[kind], settings)
    window = Window.ending_now(days * 1440, now or timezone.now())
    only = tuple((label, series.get(label, "")) for label in labels_of(Grouping.ROUTE_VERSION))
    families = set(spec.families)
    matrix = load_series(project.tenant_id, Grouping.ROUTE_VERSION, window, families, only=only)
    if len(matrix) == 0:
        return None
    batch = stack_matrices([matrix])
    error_types: list[str] = []
    if spec.by_error_type:
        typed = error_type_batch(project.tenant_id, [matrix], window, None, only)
        error_types = [k["error_type"] for k in typed.keys]
        if not error_types:
            return None
        row = error_types.index(error_type) if error_type in error_types else 0
        error_type = error_types[row]
        batch = replace(typed, keys=[typed.keys[row]], total_calls=typed.total_calls[row : row + 1],
                        columns={name: col[row : row + 1] for name, col in typed.columns.items()})
    result = detect_spec(spec, config, batch, None)
    everything = (0, slice(None))
    method = result.methods[0] if result.methods else None
    nan = np.full(result.timestamps.size, np.nan)
    observed = method.observed[0] if method is not None else nan
    return Preview(
        kind=kind,
        label=f"{spec.label} ({error_type})" if spec.by_error_type else spec.label,
        series={**matrix.keys[0], **({"error_type": error_type} if spec.by_error_type else {})},
        timestamps=result.timestamps,
        observed=np.asarray(observed, dtype=np.float64),
        expected=method.expected(everything) if method is not None else nan,
        lower=method.lower(everything) if method is not None else nan,
        upper=method.upper(everything) if method is not None else nan,
        alerts=sorted(e.fired for e in result.episodes),
        methods=[m.method for m in result.methods],
        error_types=error_types,
    )


def replace_config(config: DetectorConfig, settings: dict[str, Any]) -> DetectorConfig:
    """An unsaved copy of ``config`` with the candidate settings (what the preview runs with)."""
    copy = DetectorConfig(project=config.project, kind=config.kind, enabled=config.enabled,
                          sensitivity=config.sensitivity, min_calls=config.min_calls,
                          cooldown_minutes=config.cooldown_minutes, renotify_minutes=config.renotify_minutes,
                          params=dict(config.params or {}))
    for name, value in settings.items():
        if name in EDITABLE:
            setattr(copy, name, value)
    return copy
