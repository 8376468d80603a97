"""Keel routing plugin for the LiteLLM proxy (runs inside LiteLLM; imports only the standard library and litellm).

Copy this file next to your LiteLLM config as ``keel_litellm.py`` (``deploy/litellm/keel_litellm.py`` is a copy)
and register it::

    litellm_settings:
      callbacks: ["keel_litellm.keel_router"]

Environment:
    KEEL_URL            Keel base URL, e.g. http://keel:8000
    KEEL_API_KEY        a project key with the read scope
    KEEL_ENVIRONMENT    optional: which route environment to obey (default: routes with an empty environment,
                        else the first route of that name)
    KEEL_FAIL_MODE      "open" (default): when Keel has never answered, or the policy leaves a model group with no
                        deployment, LiteLLM routes as if Keel were absent. "closed": the group gets no deployment
                        (LiteLLM's fallbacks take over).
    KEEL_POLL_WAIT      long-poll seconds (default 25); KEEL_CACHE_TTL seconds between refreshes without
                        long-poll (default 1.5)

How it works: a daemon thread keeps the policy document fresh with ``GET /api/v1/routing/policy`` using
``If-None-Match`` + ``?wait=`` (Keel answers the moment the version changes), so a change reaches the proxy in well
under a second. ``async_filter_deployments`` — which LiteLLM awaits for every request after cooldown filtering
and before its routing strategy picks — then keeps only the deployments (by ``model_info.id``) the active Keel
revision sends traffic to, with their weights as ``litellm_params.weight`` (honoured by ``simple-shuffle``).
The last good policy is kept while Keel is unreachable.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

try:  # inside the LiteLLM proxy
    from litellm.integrations.custom_logger import CustomLogger
except ImportError:  # pragma: no cover - lets Keel's own tests import the pure logic without litellm
    CustomLogger = object  # type: ignore[misc,assignment]

logger = logging.getLogger("keel_litellm")


class PolicyCache:
    """The latest policy document, refreshed by a background thread with ETag + long-poll."""

    def __init__(self, url: str, api_key: str, *, wait: float = 25.0, ttl: float = 1.5, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"KEEL_URL must be an http(s) URL, got {url!r}")
        self.url = url.rstrip("/") + "/api/v1/routing/policy"
        self.api_key = api_key
        self.wait = wait
        self.ttl = ttl
        self.timeout = timeout
        self.document: dict[str, Any] | None = None
        self.etag = ""
        self.fetched_at = 0.0
        self.last_error = ""
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def fetch_once(self, wait: float = 0.0) -> bool:
        """One GET; returns True when a (new or unchanged) answer came back."""
        url = self.url + (f"?wait={wait:g}" if wait > 0 else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.api_key}"})  # noqa: S310
        if self.etag:
            request.add_header("If-None-Match", self.etag)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout + wait) as response:  # noqa: S310
                document = json.loads(response.read())
                with self._lock:
                    self.document = document
                    self.etag = response.headers.get("ETag", "")
                    self.fetched_at = time.monotonic()
                    self.last_error = ""
                return True
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                with self._lock:
                    self.fetched_at = time.monotonic()
                    self.last_error = ""
                return True
            self.last_error = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            self.last_error = str(exc)
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            ok = self.fetch_once(self.wait if self.document is not None else 0.0)
            if not ok:
                logger.warning("keel policy refresh failed: %s", self.last_error)
                self._stop.wait(max(self.ttl, 1.0))
            elif self.wait <= 0:
                self._stop.wait(self.ttl)

    def ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="keel-policy", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def snapshot(self) -> dict[str, Any] | None:
        with self._lock:
            return self.document


def route_policy(document: dict[str, Any] | None, model_group: str, environment: str | None) -> dict[str, Any] | None:
    if not document:
        return None
    candidates = [r for r in document.get("routes", []) if r.get("route") == model_group]
    if environment is not None:
        exact = [r for r in candidates if r.get("environment", "") == environment]
        return exact[0] if exact else None
    unscoped = [r for r in candidates if not r.get("environment")]
    return (unscoped or candidates or [None])[0]


def apply_policy(policy: dict[str, Any] | None, deployments: list[dict[str, Any]], *,
                 fail_open: bool = True) -> list[dict[str, Any]]:
    """Keep the deployments the policy sends traffic to, as copies carrying the policy's weights."""
    if policy is None:
        return deployments  # Keel does not manage this model group
    weights = {str(k): float(v) for k, v in (policy.get("weights") or {}).items() if float(v) > 0}
    paused = set(policy.get("paused") or [])
    kept = []
    for deployment in deployments:
        gateway_id = str((deployment.get("model_info") or {}).get("id", ""))
        if gateway_id in weights and gateway_id not in paused:
            chosen = copy.copy(deployment)
            chosen["litellm_params"] = {**(deployment.get("litellm_params") or {}), "weight": weights[gateway_id]}
            kept.append(chosen)
    if not kept:
        return deployments if fail_open else []
    return kept


class KeelRouter(CustomLogger):
    def __init__(self) -> None:
        if CustomLogger is not object:
            super().__init__()
        self.fail_open = os.environ.get("KEEL_FAIL_MODE", "open").strip().lower() != "closed"
        self.environment = os.environ.get("KEEL_ENVIRONMENT") or None
        url = os.environ.get("KEEL_URL", "")
        self.cache = PolicyCache(url, os.environ.get("KEEL_API_KEY", ""),
                                 wait=float(os.environ.get("KEEL_POLL_WAIT", "25")),
                                 ttl=float(os.environ.get("KEEL_CACHE_TTL", "1.5"))) if url else None
        if self.cache is not None:  # have a policy before the first request, then keep it fresh in the background
            self.cache.fetch_once()
            self.cache.ensure_running()

    async def async_filter_deployments(self, model: str, healthy_deployments: list, messages: Any,
                                       request_kwargs: dict | None = None, parent_otel_span: Any = None) -> list[dict]:
        if self.cache is None:
            return healthy_deployments
        self.cache.ensure_running()
        document = self.cache.snapshot()
        if document is None:  # Keel has never answered
            return healthy_deployments if self.fail_open else []
        policy = route_policy(document, model, self.environment)
        kept = apply_policy(policy, healthy_deployments, fail_open=self.fail_open)
        if parent_otel_span is not None and policy is not None:
            try:
                parent_otel_span.set_attribute("keel.policy.version", int(document.get("version", 0)))
                parent_otel_span.set_attribute("keel.route.revision", int(policy.get("revision", 0)))
            except Exception:  # noqa: S110 - span stamping is best effort
                pass
        return kept


keel_router = KeelRouter()
