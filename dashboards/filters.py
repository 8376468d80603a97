"""The global time range and filters every page shares, read from and written back to the URL.

Keeping them in the query string makes every view shareable: a link is the whole state of the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest

RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "24h"

# URL parameter -> column name, identical in llm_calls, rollups_1m and rollups_1h.
DIMENSIONS: dict[str, str] = {
    "environment": "Environment",
    "service": "ServiceName",
    "route": "Route",
    "provider": "Provider",
    "model": "ResponseModel",
    "cost_center": "CostCenter",
}
DIMENSION_LABELS: dict[str, str] = {
    "environment": "Environment",
    "service": "Service",
    "route": "Route",
    "provider": "Provider",
    "model": "Model version",
    "cost_center": "Cost center",
}


# What ClickHouse's DateTime (seconds since the epoch, UInt32) can hold: a bound parameter outside it fails the
# whole query ("Cannot parse DateTime"), so a custom range must lie inside.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC)


class TimeRangeError(ValueError):
    """A custom range bound that parses but lies outside what the stores can query; the caller answers 400."""

    def __init__(self, param: str, value: str) -> None:
        self.param = param
        super().__init__(f"{param}={value!r} is outside the supported range "
                         f"{EARLIEST.isoformat()} to {LATEST.isoformat()}")


def _parse_time(param: str, value: str) -> datetime | None:
    """An ISO 8601 instant (naive means UTC); None when unparseable (the default range applies), TimeRangeError
    when it parses but is outside ClickHouse's DateTime range."""
    try:
        parsed = datetime.fromisoformat(value)
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        return None
    if not EARLIEST <= parsed <= LATEST:
        raise TimeRangeError(param, value)
    return parsed


@dataclass(frozen=True)
class Filters:
    """A validated time window plus equality filters on the rollup dimensions ('' = all)."""

    start: datetime
    end: datetime
    range_key: str = DEFAULT_RANGE
    project: str = ""
    values: dict[str, str] = field(default_factory=dict)

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def active(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if v}

    def params(self, **overrides: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.project:
            out["project"] = self.project
        if self.range_key == "custom":
            out["from"] = self.start.isoformat(timespec="minutes")
            out["to"] = self.end.isoformat(timespec="minutes")
        elif self.range_key != DEFAULT_RANGE:
            out["range"] = self.range_key
        out.update(self.active())
        for key, value in overrides.items():
            if value in (None, ""):
                out.pop(key, None)
            else:
                out[key] = str(value)
        return out

    def query_string(self, **overrides: Any) -> str:
        """``?a=b`` for links that keep the current filters (``''`` when there is nothing to keep)."""
        params = self.params(**overrides)
        return "?" + urlencode(params) if params else ""

    def with_values(self, **values: str) -> Filters:
        return replace(self, values={**self.values, **values})


def filters_from_request(request: HttpRequest, now: datetime | None = None) -> Filters:
    """Read ``range`` (or ``from``/``to``) and the dimension filters; bad values fall back to defaults, but a
    ``from``/``to`` outside what ClickHouse can store raises :class:`TimeRangeError` (a 400 for pages and API)."""
    now = now or datetime.now(UTC)
    get = request.GET
    start = _parse_time("from", get.get("from", "")) if get.get("from") else None
    end = _parse_time("to", get.get("to", "")) if get.get("to") else None
    if start and end and start < end and end - start <= timedelta(days=400):
        range_key = "custom"
    else:
        range_key = get.get("range", DEFAULT_RANGE)
        if range_key not in RANGES:
            range_key = DEFAULT_RANGE
        end = now
        start = now - RANGES[range_key]
    values = {name: get.get(name, "").strip()[:200] for name in DIMENSIONS}
    # NUL can be in no stored value and PostgreSQL refuses it in a query (DataError → 500): a bad value, dropped.
    values = {name: "" if "\x00" in value else value for name, value in values.items()}
    return Filters(start=start, end=end, range_key=range_key, project=get.get("project", "").strip()[:64],
                   values=values)
