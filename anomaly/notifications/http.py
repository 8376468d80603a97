"""The one HTTP POST notification senders use: short timeouts, non-2xx is an error carrying the status."""

from __future__ import annotations

import requests

TIMEOUT_SECONDS = (3.05, 10)


class HttpDeliveryError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def post_json(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    """POST ``body`` as JSON; returns the status code or raises HttpDeliveryError."""
    if not url.startswith(("http://", "https://")):
        raise HttpDeliveryError(f"not an http(s) URL: {url!r}")
    try:
        response = requests.post(
            url, data=body, headers={"Content-Type": "application/json", **(headers or {})}, timeout=TIMEOUT_SECONDS
        )
    except requests.RequestException as exc:
        raise HttpDeliveryError(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise HttpDeliveryError(f"HTTP {response.status_code}: {response.text[:300]}", response.status_code)
    return response.status_code
