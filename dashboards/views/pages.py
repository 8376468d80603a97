"""Read-only pages over the rollups and calls: Overview, Cost, Latency & reliability, Traces, Coverage."""

from __future__ import annotations

import re
from dataclasses import replace

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from controlplane.models import Role
from dashboards import figures, sources
from dashboards.access import access_of, filters_of, require_role
from dashboards.filters import DIMENSION_LABELS
from dashboards.queries import calls, rollups, spans, users
from dashboards.queries.scope import P50, P95, P99, Scope
from dashboards.slo import slo_status
from dashboards.views.context import page, scope_of

TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,64}$")


def _tps(p: rollups.SeriesPoint) -> float | None:
    return p.output_tokens / (p.duration_ms_sum / 1000) if p.duration_ms_sum else None


@require_role(Role.VIEWER)
def overview(request: HttpRequest) -> HttpResponse:
    scope = scope_of(request)
    totals = rollups.totals(scope)
    spend = rollups.spend(scope)
    trend = rollups.series(scope, ttft=False)
    top = rollups.breakdowns(scope, ["route", "model"], limit=8, latency=False)
    by_route, by_model = top["route"], top["model"]
    figs = {
        "calls": figures.timeseries(trend, lambda p: p.calls, "Calls", y_title="calls / bucket"),
        "cost": figures.timeseries(trend, lambda p: p.cost, "Spend", y_title="USD / bucket"),
        "latency": {
            "data": [
                *figures.timeseries(trend, lambda p: p.latency[P50], "", label=lambda _: "p50")["data"],
                *figures.timeseries(trend, lambda p: p.latency[P95], "", label=lambda _: "p95")["data"],
                *figures.timeseries(trend, lambda p: p.latency[P99], "", label=lambda _: "p99")["data"],
            ],
            "layout": figures.layout("Latency", y_title="ms"),
        },
        "errors": figures.timeseries(trend, lambda p: p.errors / p.calls if p.calls else None, "Error rate",
                                     y_title="share of calls"),
    }
    for i, trace in enumerate(figs["latency"]["data"]):
        trace["line"]["color"] = figures.PALETTE[i]
    figs["errors"]["layout"]["yaxis"]["tickformat"] = ".1%"
    return page(request, "dashboards/overview.html", "overview", figs, totals=totals, spend=spend,
                by_route=by_route, by_model=by_model, alerts=sources.open_alerts(access_of(request).project),
                actions=sources.latest_actions(access_of(request).project))


COST_DIMENSIONS = [("model", "Model version"), ("provider", "Provider"), ("service", "Service"), ("route", "Route"),
                   ("cost_center", "Cost center")]


@require_role(Role.VIEWER)
def cost(request: HttpRequest) -> HttpResponse:
    scope = scope_of(request)
    totals = rollups.totals(scope)
    spend = rollups.spend(scope)
    figs = {}
    tables = rollups.breakdowns(scope, [dim for dim, _ in COST_DIMENSIONS], limit=12, latency=False)
    for dim, label in COST_DIMENSIONS:
        rows = tables[dim]
        figs[f"by_{dim}"] = figures.bars([r.key for r in rows], [round(r.cost, 4) for r in rows],
                                         f"Spend by {label.lower()}", x_title="USD", text_format="$%{x:.2f}")
    trend = rollups.series(scope, "model", latency=False, ttft=False)
    figs["trend"] = figures.timeseries(trend, lambda p: p.cost, "Spend over time by model version",
                                       y_title="USD / bucket", stack=True)
    unpriced = rollups.unpriced_models(scope)
    budgets = _budgets(access_of(request).project, scope)
    return page(request, "dashboards/cost.html", "cost", figs, totals=totals, spend=spend, tables=tables,
                cost_dimensions=COST_DIMENSIONS, unpriced=unpriced, budgets=budgets,
                price_add_url=_price_add_url(request),
                users_url=reverse("dashboards:cost-users") + filters_of(request).query_string(
                    project=access_of(request).project.slug))


@require_role(Role.VIEWER)
def cost_users(request: HttpRequest) -> JsonResponse:
    """Spend by user as a figure, fetched by the Cost page after it renders (from the per-user rollup)."""
    spend = users.spend_by_user(scope_of(request), limit=15)
    title = "Spend by user"
    if spend.unrolled_filters:
        labels = ", ".join(DIMENSION_LABELS[name].lower() for name in spend.unrolled_filters)
        title += f" (grouped from individual calls: the per-user rollup has no {labels} filter)"
    fig = figures.bars([u.user_id for u in spend.rows], [round(u.cost, 4) for u in spend.rows], title,
                       x_title="USD", text_format="$%{x:.2f}")
    return JsonResponse(fig)


def _price_add_url(request: HttpRequest) -> str | None:
    """The in-app price form, for those who may change the shared price list (admins who are staff)."""
    from dashboards.config_forms import KINDS

    if not KINDS["prices"].can_edit(access_of(request).allows, getattr(request.user, "is_staff", False)):
        return None
    return reverse("dashboards:config-new", args=["prices"])


def _budgets(project: object, scope: Scope) -> list[dict[str, object]] | None:
    """Each route budget against that route's spend this day or month (rollups), with the month-end forecast."""
    routing = sources.routing_models()
    Budget = getattr(routing, "Budget", None) if routing else None
    if Budget is None:
        return None
    out = []
    for budget in Budget.objects.filter(route__project=project, enabled=True).select_related("route"):
        route = budget.route
        values = {**scope.filters.values, "route": route.name, "environment": route.environment}
        route_spend = rollups.spend(Scope(scope.tenant_id, replace(scope.filters, values=values)))
        limit = float(budget.limit_usd)
        daily = budget.period == "day"
        used = route_spend.today if daily else route_spend.month_to_date
        out.append({"budget": budget, "limit": limit, "used": used, "share": used / limit if limit else None,
                    "forecast": None if daily else route_spend.month_forecast})
    return out


@require_role(Role.VIEWER)
def latency(request: HttpRequest) -> HttpResponse:
    scope = scope_of(request)
    totals = rollups.totals(scope)
    by_version = rollups.series(scope, "model")
    figs = {
        "p95": figures.timeseries(by_version, lambda p: p.latency[P95], "Latency p95 by model version",
                                  y_title="ms"),
        "p50": figures.timeseries(by_version, lambda p: p.latency[P50], "Latency p50 by model version",
                                  y_title="ms"),
        "ttft": figures.timeseries(by_version, lambda p: p.ttft[P95], "Time to first token p95 (streamed calls)",
                                   y_title="ms"),
        "tps": figures.timeseries(by_version, _tps, "Output tokens per second", y_title="tokens/s"),
    }
    errors = rollups.error_types(scope)
    figs["errors"] = figures.bars([e[0] for e in errors], [e[1] for e in errors], "Errors by type", x_title="calls",
                                  color=figures.PALETTE[3])
    routes = rollups.breakdown(scope, "route", limit=20, order="calls")
    return page(request, "dashboards/latency.html", "latency", figs, totals=totals, errors=errors,
                slos=slo_status(access_of(request).project, scope, routes), routes=routes)


@require_role(Role.VIEWER)
def traces(request: HttpRequest) -> HttpResponse:
    scope = scope_of(request)
    text = request.GET.get("q", "").strip()[:200]
    errors_only = request.GET.get("errors") == "1"
    found = calls.search_calls(scope, text, errors_only=errors_only, limit=100)
    return page(request, "dashboards/traces.html", "traces", {}, calls=found, q=text, errors_only=errors_only)


@require_role(Role.VIEWER)
def trace_detail(request: HttpRequest, trace_id: str) -> HttpResponse:
    if not TRACE_ID.match(trace_id):
        raise Http404("Not a trace id.")
    tenant = access_of(request).project.tenant_id
    span_rows = spans.trace_spans(tenant, trace_id)
    call_rows = calls.calls_in_trace(tenant, trace_id)
    if not span_rows and not call_rows:
        raise Http404("No such trace in this project (or it is past raw-span retention).")
    bars = [(f"{s.service} · {s.name}", s.timestamp, s.duration_ms, s.status_code == "Error") for s in span_rows]
    figs = {"waterfall": figures.waterfall(bars)}
    selected = request.GET.get("span", "")
    current = next((s for s in span_rows if s.span_id == selected), span_rows[0] if span_rows else None)
    current_call = next((c for c in call_rows if current and c.span_id == current.span_id), None)
    return page(request, "dashboards/trace_detail.html", "traces", figs, show_filters=False, trace_id=trace_id,
                spans=span_rows, calls=call_rows, current=current, current_call=current_call,
                back=filters_of(request).query_string())


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


@require_role(Role.VIEWER)
def coverage(request: HttpRequest) -> HttpResponse:
    """Reads the ingestion app's coverage rollup through its query object (``ingestion.coverage``)."""
    from ingestion.coverage import CoverageQuery

    filters = filters_of(request)
    rows = CoverageQuery(access_of(request).project.tenant_id, filters.start.replace(tzinfo=None),
                         filters.end.replace(tzinfo=None)).fetch()
    figs: dict[str, figures.Figure] = {}
    if rows:
        labels = [f"{r.scope_name or '(no scope)'} {r.scope_version} · {r.service}" for r in rows]
        figs["coverage"] = {
            "data": [
                {"type": "bar", "name": name, "y": labels[::-1], "x": [_share(getter(r), r.calls) for r in rows][::-1],
                 "orientation": "h", "marker": {"color": color}}
                for name, getter, color in (
                    ("lacking model", lambda r: r.missing_model, figures.PALETTE[3]),
                    ("lacking usage", lambda r: r.missing_usage, figures.PALETTE[1]),
                    ("lacking price", lambda r: r.unpriced, figures.PALETTE[6]),
                )
            ],
            "layout": figures.layout("Share of calls lacking a field, by instrumentation source",
                                     height=max(220, 90 + 60 * len(rows)), barmode="group", hovermode="closest"),
        }
        figs["coverage"]["layout"]["xaxis"]["tickformat"] = ".0%"
        figs["coverage"]["layout"]["xaxis"]["range"] = [0, 1]
        figs["coverage"]["layout"]["margin"]["l"] = 300
    return page(request, "dashboards/coverage.html", "coverage", figs, show_filters=False, rows=rows,
                price_add_url=_price_add_url(request))
