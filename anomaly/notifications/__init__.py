"""Alert notifications: queue one attempt per channel and event, deliver each with retries, record every try.

Queueing happens inside the alert transaction (so a rolled-back change notifies nobody); delivery happens after
commit in the ``anomaly.deliver_notification`` task, and a periodic ``anomaly.retry_notifications`` sweep picks
up anything due (a retry, or a task lost with its worker). A failing channel only ever marks its own attempt.
"""

from anomaly.notifications.delivery import (
    MAX_ATTEMPTS,
    DeliveryError,
    backoff_seconds,
    deliver,
    deliver_due,
    queue_event,
)
from anomaly.notifications.webhook import sign, verify_signature

__all__ = [
    "MAX_ATTEMPTS",
    "DeliveryError",
    "backoff_seconds",
    "deliver",
    "deliver_due",
    "queue_event",
    "sign",
    "verify_signature",
]
