"""Plotly figure builders: plain figure dicts (data + layout) built on the server and rendered by plotly.js.

Dicts rather than ``graph_objects`` keep a page's figure building to microseconds; the tests validate every
builder's output with ``plotly.graph_objects.Figure`` so they remain real plotly figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from dashboards.queries.rollups import SeriesPoint

Figure = dict[str, Any]

PALETTE = ["#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4b5563"]


def layout(title: str = "", *, y_title: str = "", height: int = 300, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0, "font": {"size": 14}},
        "height": height,
        "margin": {"l": 56, "r": 16, "t": 40 if title else 16, "b": 40},
        "template": "plotly_white",
        "legend": {"orientation": "h", "y": -0.2, "font": {"size": 11}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero", "automargin": True},
        "xaxis": {"automargin": True},
        "hovermode": "x unified",
        "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
    }
    base.update(extra)
    return base


def _iso(value: datetime) -> str:
    return value.isoformat()


def timeseries(points: Iterable[SeriesPoint], value: Callable[[SeriesPoint], float | None], title: str, *,
               y_title: str = "", label: Callable[[str], str] = lambda k: k or "all",
               stack: bool = False) -> Figure:
    """One line per series key (as returned by ``rollups.series``)."""
    by_key: dict[str, tuple[list[str], list[float | None]]] = {}
    for p in points:
        xs, ys = by_key.setdefault(p.key, ([], []))
        xs.append(_iso(p.bucket))
        ys.append(value(p))
    data = []
    for i, (key, (xs, ys)) in enumerate(by_key.items()):
        trace: dict[str, Any] = {"type": "scatter", "mode": "lines", "name": label(key), "x": xs, "y": ys,
                                 "line": {"color": PALETTE[i % len(PALETTE)], "width": 2}}
        if stack:
            trace["stackgroup"] = "one"
        data.append(trace)
    return {"data": data, "layout": layout(title, y_title=y_title)}


def share(points: Iterable[SeriesPoint], title: str, markers: Sequence[tuple[datetime, str, str]] = ()) -> Figure:
    """Stacked share of calls per key over time (100% = all calls in the bucket), with event markers.

    ``markers`` are (time, label, kind) where kind is deploy / alert / action; each is a dashed vertical line.
    """
    fig = timeseries(points, lambda p: p.calls, title, y_title="share of calls", stack=True)
    for trace in fig["data"]:
        trace["groupnorm"] = "percent"
        trace["hovertemplate"] = "%{y:.1f}%<extra>%{fullData.name}</extra>"
    colors = {"deploy": "#16a34a", "alert": "#dc2626", "action": "#9333ea"}
    shapes, annotations = [], []
    for when, text, kind in markers:
        color = colors.get(kind, "#4b5563")
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": _iso(when), "x1": _iso(when), "y0": 0,
                       "y1": 1, "line": {"color": color, "width": 1.5, "dash": "dash"}})
        annotations.append({"x": _iso(when), "y": 1.02, "xref": "x", "yref": "paper", "text": text, "showarrow": False,
                            "font": {"size": 10, "color": color}, "textangle": -30, "xanchor": "left"})
    fig["layout"]["shapes"] = shapes
    fig["layout"]["annotations"] = annotations
    fig["layout"]["yaxis"]["ticksuffix"] = "%"
    fig["layout"]["margin"]["t"] = 70
    return fig


def bars(labels: Sequence[str], values: Sequence[float], title: str, *, x_title: str = "",
         horizontal: bool = True, color: str = PALETTE[0], text_format: str = "") -> Figure:
    """Horizontal bars, biggest first at the top."""
    trace: dict[str, Any] = {"type": "bar", "marker": {"color": color}, "name": title}
    if horizontal:
        trace |= {"orientation": "h", "x": list(values)[::-1], "y": [str(lbl) or "(none)" for lbl in labels][::-1]}
    else:
        trace |= {"x": [str(lbl) or "(none)" for lbl in labels], "y": list(values)}
    if text_format:
        trace["texttemplate"] = text_format
        trace["textposition"] = "auto"
    height = max(180, 40 + 26 * len(labels)) if horizontal else 300
    lay = layout(title, height=height, showlegend=False, hovermode="closest")
    lay["xaxis"]["title"] = {"text": x_title}
    lay["margin"]["l"] = 140 if horizontal else 56
    return {"data": [trace], "layout": lay}


def band(times: Sequence[datetime], observed: Sequence[float | None], expected: Sequence[float | None],
         lower: Sequence[float | None], upper: Sequence[float | None], title: str, y_title: str = "") -> Figure:
    """Observed metric against the detector's expected value and band (the alert evidence chart)."""
    xs = [_iso(t) for t in times]
    data = [
        {"type": "scatter", "mode": "lines", "name": "band (upper)", "x": xs, "y": list(upper),
         "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip"},
        {"type": "scatter", "mode": "lines", "name": "expected band", "x": xs, "y": list(lower), "fill": "tonexty",
         "fillcolor": "rgba(37,99,235,0.15)", "line": {"width": 0}},
        {"type": "scatter", "mode": "lines", "name": "expected", "x": xs, "y": list(expected),
         "line": {"color": PALETTE[0], "dash": "dot"}},
        {"type": "scatter", "mode": "lines+markers", "name": "observed", "x": xs, "y": list(observed),
         "line": {"color": PALETTE[3], "width": 2}, "marker": {"size": 4}},
    ]
    return {"data": data, "layout": layout(title, y_title=y_title)}


def with_alerts(figure: Figure, times: Sequence[datetime], values: Sequence[float | None],
                name: str = "would alert") -> Figure:
    """Add the points where an alert fires as red markers (always a trace, empty when nothing fires)."""
    figure["data"].append({"type": "scatter", "mode": "markers", "name": f"{name} ({len(times)})",
                           "x": [_iso(t) for t in times], "y": list(values),
                           "marker": {"color": PALETTE[3], "size": 11, "symbol": "x"}, "meta": "alerts"})
    return figure


def waterfall(rows: Sequence[tuple[str, datetime, float, bool]], title: str = "Trace waterfall") -> Figure:
    """Spans as horizontal bars offset from the trace start: (label, start, duration ms, is_error)."""
    if not rows:
        return {"data": [], "layout": layout(title)}
    origin = min(r[1] for r in rows)
    labels = [f"{i + 1}. {r[0]}" for i, r in enumerate(rows)]
    bases = [(r[1] - origin).total_seconds() * 1000 for r in rows]
    trace = {"type": "bar", "orientation": "h", "y": labels[::-1], "x": [r[2] for r in rows][::-1],
             "base": bases[::-1], "marker": {"color": [PALETTE[3] if r[3] else PALETTE[0] for r in rows][::-1]},
             "hovertemplate": "%{y}<br>start +%{base:.0f} ms, %{x:.0f} ms<extra></extra>", "name": "spans"}
    lay = layout(title, height=max(160, 40 + 28 * len(rows)), showlegend=False, hovermode="closest")
    lay["xaxis"]["title"] = {"text": "ms since trace start"}
    lay["margin"]["l"] = 220
    return {"data": [trace], "layout": lay}


def to_json(figure: Figure) -> str:
    """JSON safe to place inside ``<script type="application/json">`` (no ``</script>`` break-out)."""
    return json.dumps(figure, default=str, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")
