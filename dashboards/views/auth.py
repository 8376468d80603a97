"""Sign-in with throttling: failures are counted per username + client IP; past the limit the answer is 429."""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


def _key(request: HttpRequest) -> str:
    username = (request.POST.get("username") or "").strip().lower()
    ip = request.META.get("REMOTE_ADDR", "")
    return "keel-login-fail:" + hashlib.sha256(f"{username}|{ip}".encode()).hexdigest()


class ThrottledLoginView(LoginView):
    """Django's login view; a username+IP pair that failed ``MAX_FAILURES`` times waits ``WINDOW_SECONDS``."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = _key(request)
        if (cache.get(key) or 0) >= MAX_FAILURES:
            response = self.render_to_response(self.get_context_data(form=self.get_form(), throttled=True))
            response.status_code = 429
            response["Retry-After"] = str(WINDOW_SECONDS)
            return response
        response = super().post(request, *args, **kwargs)
        if response.status_code == 302:
            cache.delete(key)
        else:
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, WINDOW_SECONDS)
        return response
