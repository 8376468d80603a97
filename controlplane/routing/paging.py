"""Page a human when routing cannot fix something itself (failed push, failed verification, budget breach).

Alerts belong to the alerts engine: when ``anomaly.alerts.raise_alert`` exists it is called; either way the page
is written to the audit log so nothing is lost when the alerts engine is absent or fails.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from controlplane.models import Action, Project, Route
from controlplane.routing import audit

logger = logging.getLogger(__name__)


def page(project: Project, title: str, detail: str, *, route: Route | None = None,
         action: Action | None = None) -> Any:
    """Raise an alert (if the alerts engine is installed) and audit the page; returns the alert or None."""
    alert = None
    try:
        alerts = importlib.import_module("anomaly.alerts")
        raise_alert = getattr(alerts, "raise_alert", None)
        if raise_alert is not None:
            alert = raise_alert(project=project, title=title, detail=detail, route=route.name if route else "",
                                source="routing")
    except ImportError:
        pass
    except Exception:  # the page is still audited below
        logger.exception("raising an alert for %r failed", title)
    audit.append(project, "system:routing", "page", title[:500], route=route,
                 action_id=action.pk if action else None, alert_id=getattr(alert, "pk", None),
                 data={"detail": detail, "alert_raised": alert is not None})
    return alert
