"""API rate limits: per API key or user, rate from ``KEEL_API_RATE`` (default 600/min)."""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import SimpleRateThrottle

from controlplane.apikeys import VerifiedKey


class ApiThrottle(SimpleRateThrottle):
    scope = "api"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if isinstance(request.auth, VerifiedKey):
            ident = f"key-{request.auth.key_id}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
