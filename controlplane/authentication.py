"""DRF authentication with project API keys (``Authorization: Bearer keel_…``)."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from controlplane.apikeys import VerifiedKey, bearer_token, verify_key


class ApiKeyPrincipal:
    """The caller behind an API key: authenticated, bound to exactly one project, never staff."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, key: VerifiedKey) -> None:
        self.key = key

    def __str__(self) -> str:
        return f"api-key:{self.key.key_id}"

    @property
    def username(self) -> str:
        return str(self)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[ApiKeyPrincipal, VerifiedKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        token = bearer_token(header)
        if token is None:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
        key = verify_key(token)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="keel"'
