"""Time filters: the one parser behind every page and the metrics API keeps ranges inside ClickHouse's DateTime."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from django.test import RequestFactory

from dashboards.filters import LATEST, TimeRangeError, filters_from_request

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _filters(**params: str):  # type: ignore[no-untyped-def]
    return filters_from_request(RequestFactory().get("/", params), now=NOW)


@pytest.mark.parametrize(("start", "end", "bad"), [
    ("0288-02-02T00:00:00", "0288-02-03T00:00:00", "from"),  # what schemathesis generated
    ("1969-12-31T23:59:59Z", "1970-01-02T00:00:00Z", "from"),
    ("2106-02-07T00:00:00Z", "2106-02-08T00:00:00Z", "to"),
    ("9999-12-30T00:00:00+05:00", "9999-12-31T00:00:00", "from"),
])
def test_bounds_outside_clickhouse_datetime_are_refused(start: str, end: str, bad: str) -> None:
    with pytest.raises(TimeRangeError) as raised:
        _filters(**{"from": start, "to": end})
    assert raised.value.param == bad
    assert "outside the supported range" in str(raised.value)


def test_bounds_at_the_edges_and_unparseable_values() -> None:
    edge = _filters(**{"from": "2106-02-06T06:28:15Z", "to": LATEST.isoformat()})
    assert (edge.range_key, edge.end) == ("custom", LATEST)
    epoch = _filters(**{"from": "1970-01-01T00:00:00", "to": "1970-01-02T00:00:00"})
    assert epoch.range_key == "custom" and epoch.start == datetime(1970, 1, 1, tzinfo=UTC)
    garbage = _filters(**{"from": "yesterday", "to": "2026-03-01T00:00:00"})  # unparseable: the default range
    assert (garbage.range_key, garbage.end) == ("24h", NOW)


@pytest.mark.django_db
def test_pages_and_api_answer_400_for_out_of_range_dates(client, traffic_project, member) -> None:  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    from controlplane.apikeys import issue_key

    window = {"from": "0288-02-02T00:00:00", "to": "0288-02-03T00:00:00"}
    client.force_login(member("viewer"))
    page = client.get("/latency/", {"project": traffic_project.slug, **window})
    assert page.status_code == 400
    assert "from='0288-02-02T00:00:00' is outside the supported range" in page.content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(traffic_project, ['read']).secret}")
    response = api.get("/api/v1/metrics/timeseries", window)
    assert response.status_code == 400
    assert "outside the supported range" in response.json()["detail"]["from"][0]
    # The same window inside the range is served from the rollups (the fix did not break custom ranges).
    fine = api.get("/api/v1/metrics/timeseries", {"from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"})
    assert fine.status_code == 200 and fine.json()["points"] == []
