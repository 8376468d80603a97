"""The /metrics counters move when the things they count happen."""

from __future__ import annotations

import re

import pytest
from django.test import Client


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? ([0-9.e+-]+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.mark.django_db
def test_alert_transitions_are_counted(project) -> None:  # type: ignore[no-untyped-def]
    from anomaly.alerts import raise_alert

    before = _value(Client().get("/metrics").content.decode(), "keel_alerts_total", detector="routing",
                    event="opened")
    assert raise_alert(project=project, title="push failed", detail="gateway down", route="chat-default")
    after = _value(Client().get("/metrics").content.decode(), "keel_alerts_total", detector="routing",
                   event="opened")
    assert after == before + 1
