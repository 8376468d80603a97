"""Django core: apps, middleware, templates, static files, auth, REST framework."""

from __future__ import annotations

from .env import BASE_DIR, get_int, get_str, var_dir

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "controlplane",
    "ingestion",
    "anomaly",
    "dashboards",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
ASGI_APPLICATION = "controlplane.asgi.application"
WSGI_APPLICATION = "controlplane.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = var_dir() / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise serves from the finders; an empty root keeps it quiet
STATICFILES_DIRS = [BASE_DIR / "dashboards" / "static"]
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["controlplane.throttling.ApiThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api": get_str("KEEL_API_RATE", "600/min"), "login": "10/min"},
    "EXCEPTION_HANDLER": "controlplane.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Keel API",
    "DESCRIPTION": "Observability control plane for AI traffic.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc assets come from the installed sidecar package, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "controlplane.openapi.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "controlplane.models.projects.Role",
        "ScopeEnum": "controlplane.models.projects.Scope",
        "ActionKindEnum": "controlplane.models.routing.ActionKind",
        "ActionStateEnum": "controlplane.models.routing.ActionState",
        "AdapterKindEnum": "controlplane.models.routing.AdapterKind",
        "DetectorKindEnum": "anomaly.models.DetectorKind",
        "SeverityEnum": "anomaly.models.Severity",
        "AlertStateEnum": "anomaly.models.AlertState",
        "ChannelKindEnum": "anomaly.models.ChannelKind",
        "AttemptStatusEnum": "anomaly.models.AttemptStatus",
        "PolicyModeEnum": "controlplane.models.routing.PolicyMode",
        "BudgetPeriodEnum": "controlplane.models.routing.BudgetPeriod",
        "BudgetResponseEnum": "controlplane.models.routing.BudgetResponse",
    },
}

# Ingestion limits (OTLP/HTTP).
KEEL_MAX_BODY_BYTES = get_int("KEEL_MAX_BODY_BYTES", 64 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = KEEL_MAX_BODY_BYTES

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "controlplane.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": get_str("KEEL_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "celery": {"level": "WARNING"},
        # Connection retries are reported by Keel itself (503s, /readyz, start-up errors).
        "urllib3": {"level": "ERROR"},
        "clickhouse_connect": {"level": "ERROR"},
    },
}
