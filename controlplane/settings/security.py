"""Secret key, hosts and the hardening that ``manage.py check --deploy`` expects in production."""

from __future__ import annotations

import secrets

from .env import StartupError, get_bool, get_int, get_list, get_str, var_dir

# "embedded" = one process on one machine (make run); "production" = real servers, strict settings.
KEEL_MODE = get_str("KEEL_MODE", "embedded").lower()
if KEEL_MODE not in {"embedded", "production"}:
    raise StartupError(f"KEEL_MODE={KEEL_MODE!r} is unknown: set it to 'embedded' or 'production'.")
PRODUCTION = KEEL_MODE == "production"

DEBUG = get_bool("DEBUG", False)


def _secret_key() -> str:
    configured = get_str("SECRET_KEY")
    if configured:
        return configured
    if PRODUCTION:
        raise StartupError(
            "SECRET_KEY is not set: production mode (KEEL_MODE=production) needs SECRET_KEY set to a long random "
            "string, e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    key_file = var_dir() / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = get_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = get_list("CSRF_TRUSTED_ORIGINS", [])

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True

if PRODUCTION:
    SECURE_SSL_REDIRECT = get_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = get_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Health probes come over plain HTTP from the orchestrator.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
