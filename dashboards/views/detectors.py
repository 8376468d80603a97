"""Detector settings: every member sees each detector's settings and previews candidate settings on a route's real
history (observed, expected band, where alerts would fire); admins save them. ``anomaly.tuning`` does the work."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse

from controlplane.models import Role
from dashboards import figures, sources
from dashboards.access import access_of, require_role
from dashboards.views.context import page


def _series_value(series: dict[str, str]) -> str:
    return json.dumps([series.get("environment", ""), series.get("route", ""), series.get("model_version", "")])


def _chosen_series(raw: str, choices: list[dict[str, str]]) -> dict[str, str] | None:
    """The requested series if it is one of this project's (never a label set from elsewhere), else the busiest."""
    wanted = next((c for c in choices if _series_value(c) == raw), None) if raw else None
    return wanted or (choices[0] if choices else None)


def _figure(preview: Any) -> figures.Figure:
    times = [datetime.fromtimestamp(int(t), UTC) for t in preview.timestamps]

    def column(values: Any) -> list[float | None]:
        return [float(v) if v == v else None for v in values]  # NaN -> gap

    observed = column(preview.observed)
    fig = figures.band(times, observed, column(preview.expected), column(preview.lower), column(preview.upper),
                       f"{preview.label}: observed vs expected")
    for trace in fig["data"]:
        if trace["name"] == "observed":  # days of minutes: a thin line, no per-point markers
            trace.update(mode="lines", line={"color": figures.PALETTE[8], "width": 1})
    return figures.with_alerts(fig, [times[i] for i in preview.alerts], [observed[i] for i in preview.alerts])


def _query(kind: str, series: str, days: int, extra: dict[str, Any] | None = None, *, project: str) -> str:
    return urlencode({"project": project, "kind": kind, "series": series, "days": days, **(extra or {})})


@require_role(Role.VIEWER)
def detector_settings(request: HttpRequest) -> HttpResponse:
    tuning = sources.optional_module("anomaly.tuning")
    if tuning is None:
        raise Http404("Detectors are not installed in this build.")
    access = access_of(request)
    project = access.project
    params: QueryDict = request.POST if request.method == "POST" else request.GET
    configs = {c.kind: c for c in tuning.editable_configs(project)}
    kind = params.get("kind") or next(iter(configs))
    if kind not in configs:
        raise Http404("No such detector.")
    config = configs[kind]
    try:
        days = int(params.get("days") or tuning.DEFAULT_PREVIEW_DAYS)
    except ValueError:
        days = tuning.DEFAULT_PREVIEW_DAYS
    if days not in tuning.PREVIEW_DAYS:
        days = tuning.DEFAULT_PREVIEW_DAYS
    if request.method == "POST":
        if not access.allows(Role.ADMIN):
            raise PermissionDenied("Changing detector settings needs the Admin role.")
        data = params.dict()
        data.setdefault("enabled", "off")  # an unticked checkbox is not submitted
        try:
            tuning.save_settings(config, tuning.parse_settings(data, config))
        except tuning.SettingsError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Saved {config.get_kind_display()} settings; the next sweep uses them.")
        back = _query(kind, params.get("series", ""), days, project=project.slug)
        return redirect(reverse("dashboards:detectors") + "?" + back)
    candidate: dict[str, Any] = {}
    try:
        candidate = tuning.parse_settings(params.dict(), config)
    except tuning.SettingsError as exc:
        messages.error(request, f"{exc}; previewing the saved settings instead.")
        candidate = tuning.parse_settings({}, config)
    choices = tuning.series_choices(project, days=days)
    series = _chosen_series(params.get("series", ""), choices)
    result = None
    if series is not None and tuning.previewable(kind):
        result = tuning.preview(project, kind, series, candidate, days=days, error_type=params.get("error_type", ""))
    figs = {"preview": _figure(result)} if result is not None else {}
    return page(
        request, "dashboards/detectors.html", "alerts", figs, show_filters=False,
        configs=list(configs.values()), config=config, kind=kind, candidate=candidate, days=days,
        day_choices=tuning.PREVIEW_DAYS, series_choices=[(_series_value(c), c) for c in choices],
        series_value=_series_value(series) if series else "", previewable=tuning.previewable(kind), preview=result,
        changed=any(candidate[k] != getattr(config, k) for k in candidate),
    )
