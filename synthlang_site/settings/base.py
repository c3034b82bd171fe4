"""The project's place on disk, DEBUG, the secrets, how it serves and what it runs."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from synthlang_site.envconfig import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    fernet_keys,
    local_dev_secrets,
)

# synthlang_site/settings/base.py: three levels below the project's root.
BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env_bool("DEBUG", False)

# --- Secrets -------------------------------------------------------------------------
_dev_secrets = local_dev_secrets(BASE_DIR / ".local-secrets.env") if DEBUG else {}
SECRET_KEY = env_str("SECRET_KEY") or _dev_secrets.get("SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is false.")
_encryption_key = env_str("ENCRYPTION_KEY") or _dev_secrets.get("ENCRYPTION_KEY", "")
if not _encryption_key:
    raise ImproperlyConfigured(
        "ENCRYPTION_KEY is required when DEBUG is false (provider keys are encrypted with it)."
    )
# The first key encrypts; every key decrypts, so keys can be rotated without downtime.
ENCRYPTION_KEYS = fernet_keys("ENCRYPTION_KEY", _encryption_key)
# API keys are stored as HMAC hashes under this pepper. It defaults to a value derived
# from SECRET_KEY; set it explicitly to rotate SECRET_KEY without invalidating API keys.
API_KEY_PEPPER = env_str("API_KEY_PEPPER") or SECRET_KEY
# How long a process trusts its cached copy of an API key: the longest a revoked key
# can still be used.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 5, minimum=0, maximum=60)
# While the database is unreachable, a key this process checked within this many seconds
# keeps working (0: every key needs the database once API_KEY_CACHE_SECONDS have passed).
API_KEY_STALE_IF_ERROR_SECONDS = env_int(
    "API_KEY_STALE_IF_ERROR_SECONDS", 300, minimum=0, maximum=86400
)

# --- Serving -------------------------------------------------------------------------
HOST = env_str("HOST", "0.0.0.0")  # noqa: S104 - a server in a container binds every interface
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"] if DEBUG else None)
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS is required when DEBUG is false (comma-separated host names)."
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
AUTO_MIGRATE = env_bool("AUTO_MIGRATE", DEBUG)
# Server processes of `python -m synthlang_site` on one port; 0 (unset) means 1 in
# development and without Redis, else two per core as memory allows (synthlang_site/workers.py).
WEB_CONCURRENCY = env_int("WEB_CONCURRENCY", 0, minimum=0, maximum=256)
# On SIGTERM a server stops accepting and gives open requests and streams this long to
# finish; keep it below the platform's own stop timeout (Heroku and Render: 30 s).
SHUTDOWN_GRACE_SECONDS = env_float("SHUTDOWN_GRACE_SECONDS", 25.0, minimum=0, maximum=3600)

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
    "drf_spectacular_sidecar",  # Swagger UI assets served locally, for /api/docs/
    "django_prometheus",
    "channels",
    # Failed admin sign-ins, per account and per address (see "Brute force" below).
    "axes",
    "mozilla_django_oidc",  # single sign-on to the admin, when OIDC_RP_CLIENT_ID is set
    "accounts",
    "billing",
    "proxy",
    "prompts",
    "tools",
    "guardrails",  # PII masking, deny/allow rules (docs/decisions/0031)
    "synthlang_site",  # ops: backup commands, TaskRun (docs/decisions/0008-backups.md)
]

MIDDLEWARE = [
    "common.middleware.RequestIdMiddleware",
    # Before host validation and HTTPS redirects: probes and scrapes reach the pod by its IP
    # over plain HTTP (/livez, /readyz, /health, /metrics).
    "common.probes.ProbesMiddleware",
    # Before any other work: a blocked address costs nothing more (/api/ only).
    "accounts.throttle.KeyLookupThrottleMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# The OpenAI-compatible API (/v1/) runs through these only: each must be async-native,
# so a proxied request never waits for a thread (see synthlang_site/api_handler.py).
API_MIDDLEWARE = [
    "common.middleware.RequestIdMiddleware",
    "common.middleware.AllowedHostMiddleware",
    "accounts.throttle.KeyLookupThrottleMiddleware",
]

ROOT_URLCONF = "synthlang_site.urls"
ASGI_APPLICATION = "synthlang_site.asgi.application"
WSGI_APPLICATION = "synthlang_site.wsgi.application"

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
                "accounts.oidc.single_sign_on_context",
            ],
        },
    },
]

# --- Static files, i18n --------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security (production) -----------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# The health check is called over plain HTTP by load balancers and platforms.
SECURE_REDIRECT_EXEMPT = [r"^health/?$", r"^livez$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Django 6 makes https the default scheme of URL form fields; opt in now.
FORMS_URLFIELD_ASSUME_HTTPS = True
