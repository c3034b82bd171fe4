"""Running it: e-mail, metrics, probes, backups, the management API's schema, logging."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from synthlang_site.envconfig import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
)
from synthlang_site.settings.base import BASE_DIR
from synthlang_site.settings.services import REDIS_OUTAGE_POLICY

# --- E-mail (member invitations) ------------------------------------------------------
# Without EMAIL_HOST, messages are written to the console (the embedded default).
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "synthlang@localhost") or "synthlang@localhost"
INVITATION_VALID_DAYS = env_int("INVITATION_VALID_DAYS", 7, minimum=1, maximum=90)

# --- Metrics ---------------------------------------------------------------------------
# When set, GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>" (Prometheus'
# authorization.credentials); unset, it is open, for a scraper on a private network.
METRICS_TOKEN = env_str("METRICS_TOKEN")
# The organization label of the per-organization metrics (cost, tokens): the slugs listed
# here get their own series (every other organization counts as "other"); without a list,
# the first METRICS_ORGANIZATIONS_MAX organizations a process sees (0: none).
METRICS_ORGANIZATIONS = frozenset(env_list("METRICS_ORGANIZATIONS"))
METRICS_ORGANIZATIONS_MAX = env_int("METRICS_ORGANIZATIONS_MAX", 100, minimum=0, maximum=10_000)

# --- Probes ----------------------------------------------------------------------------
# The components without which /readyz (and /health) answer 503, among "database", "cache"
# (only when it is Redis), "broker" and "semantic_cache". By default the database, and Redis
# when REDIS_OUTAGE_POLICY=refuse: with the `local` policy an instance serves through a
# Redis outage (per-process limits, no cache), and Redis is shared by every instance, so
# failing readiness then would take them all out of rotation at once. The semantic tier is
# optional (exact hits go on without it): reported, not deciding, unless named here.
READYZ_REQUIRES = env_list(
    "READYZ_REQUIRES", ["database", "cache"] if REDIS_OUTAGE_POLICY == "refuse" else ["database"]
)
_unknown_probes = set(READYZ_REQUIRES) - {"database", "cache", "broker", "semantic_cache"}
if _unknown_probes:
    raise ImproperlyConfigured(
        f"READYZ_REQUIRES names unknown components: {', '.join(sorted(_unknown_probes))} "
        "(known: database, cache, broker, semantic_cache)."
    )

# --- Backups ---------------------------------------------------------------------------
# Encrypted with the first ENCRYPTION_KEY; a relative directory is under the project.
_backup_dir = Path(env_str("BACKUP_DIR", "./backups") or "./backups")
BACKUP_DIR = _backup_dir if _backup_dir.is_absolute() else BASE_DIR / _backup_dir
BACKUP_RETENTION_DAYS = env_int("BACKUP_RETENTION_DAYS", 30, minimum=1, maximum=36_500)
# Where backups are kept: empty for BACKUP_DIR, a directory, or s3://bucket/prefix (AWS
# credentials and region the usual ways; the endpoint for S3-compatible stores below).
BACKUP_STORAGE_URL = env_str("BACKUP_STORAGE_URL")
if BACKUP_STORAGE_URL.startswith("s3://") and not BACKUP_STORAGE_URL[5:].split("/")[0]:
    raise ImproperlyConfigured("BACKUP_STORAGE_URL must name a bucket: s3://bucket/prefix")
BACKUP_S3_ENDPOINT_URL = env_url("BACKUP_S3_ENDPOINT_URL", "")

# --- HTTP API ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.errors.drf_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SynthLang Proxy management API",
    "DESCRIPTION": "Keys, members and usage of your organization.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Two models have a field named "kind" with different choices: each enum named for what
    # it is, so the schema's names do not depend on which one the generator met first.
    "ENUM_NAME_OVERRIDES": {
        "GuardrailRuleKindEnum": "guardrails.models.RuleKind",
        "ToolAttachRuleKindEnum": "tools.models.MatchKind",
    },
}

# --- Logging -------------------------------------------------------------------------
LOG_LEVEL = env_choice(
    "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True
)
LOG_FILE = env_str("LOG_FILE", "proxy.log")
# One JSON access line per request at INFO on the "synthlang.access" logger
# (common/access_log.py); Daphne's own plain-text line is never written. Successes are
# sampled at ACCESS_LOG_SAMPLE_RATE (0 to 1); errors are always written.
ACCESS_LOG = env_bool("ACCESS_LOG", True)
ACCESS_LOG_SAMPLE_RATE = env_float("ACCESS_LOG_SAMPLE_RATE", 1.0, minimum=0.0, maximum=1.0)
_log_handlers = {
    "console": {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["request_id", "redact_secrets"],
    }
}
if LOG_FILE:
    _log_handlers["file"] = {
        "class": "logging.handlers.WatchedFileHandler",
        "filename": LOG_FILE,
        "formatter": "json",
        "filters": ["request_id", "redact_secrets"],
    }
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "common.logging.RequestIdFilter"},
        "redact_secrets": {"()": "common.logging.RedactSecretsFilter"},
    },
    "formatters": {"json": {"()": "common.logging.JsonFormatter"}},
    "handlers": _log_handlers,
    "root": {"handlers": list(_log_handlers), "level": LOG_LEVEL},
    "loggers": {
        # Django logs every 4xx/5xx of the proxy as a warning; our own access log covers it.
        "django.request": {"level": "ERROR"},
        # The access line is written whatever LOG_LEVEL says; ACCESS_LOG turns it off.
        "synthlang.access": {"level": "INFO"},
    },
}
