"""DRF authentication with project API keys (``Authorization: Bearer keel_…``)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
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


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents project API keys in the OpenAPI schema as HTTP bearer auth."""

    target_class = "controlplane.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "keel_<prefix>_<secret>"}
