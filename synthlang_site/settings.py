"""Settings for SynthLang Proxy, read from the environment.

DESIGN.md's table of variables is the contract. The embedded default (no environment
at all) is SQLite, a local-memory cache, eager Celery and the offline ``fake``
provider; production points DATABASE_URL and REDIS_URL at shared services.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from billing.beat import BEAT_SCHEDULE as BILLING_BEAT_SCHEDULE
from common.redis_target import (
    RedisUrlError,
    celery_sentinel_options,
    celery_sentinel_url,
    channels_host,
    is_sentinel_url,
    redis_target,
)
from proxy.beat import BEAT_SCHEDULE as PROXY_BEAT_SCHEDULE
from synthlang_site.envconfig import (
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
    fernet_keys,
    local_dev_secrets,
    redis_tls_url,
    redis_url,
    sqlite_path,
)

BASE_DIR = Path(__file__).resolve().parent.parent

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

# --- Database ------------------------------------------------------------------------
_database_url = env_str("DATABASE_URL")
_use_sqlite = env_bool("USE_SQLITE", False) or not _database_url
if _use_sqlite:
    SQLITE_PATH = sqlite_path(
        "SQLITE_PATH",
        env_str("SQLITE_PATH", "./synthlang_proxy.db") or "./synthlang_proxy.db",
        BASE_DIR,
    )
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            # The async proxy and Celery's eager tasks write from several threads.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
            # A file, not memory, so live-server tests can share it with a server process;
            # named per process so two test runs on one machine never share it.
            "TEST": {"NAME": str(BASE_DIR / f"test_synthlang_{os.getpid()}.sqlite3")},
        }
    }
else:
    DATABASES = {"default": database_from_url("DATABASE_URL", _database_url)}
    # Under ASGI, Django's persistent connections belong to the async-to-sync bridge's
    # threads, which come and go with the load: each kept its own connection until
    # PostgreSQL ran out. psycopg's pool caps them per process; a thread borrows one for a
    # request (or a query batch on the API path) and gives it back at the end.
    # DB_POOL=false opens one connection per request instead (behind PgBouncer, say).
    # Figures and the choice: docs/decisions (database connections).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # With the pool: each connection is checked as it is lent, so one broken by a
    # database restart is replaced rather than handed out.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    # A database that does not answer must fail fast (health checks, start-up).
    _db_options["connect_timeout"] = 5
    if env_bool("DB_POOL", True):
        # Django's backend, failing at once instead of waiting on the pool when the
        # database cannot be reached (common/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "common.postgresql"
        _db_options["pool"] = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 1, minimum=0, maximum=1000),
            "max_size": env_int("DB_POOL_MAX_SIZE", 10, minimum=1, maximum=1000),
            # How long a request waits for a free connection before it fails.
            "timeout": env_float("DB_POOL_TIMEOUT", 10.0, minimum=0.1, maximum=300),
        }
        if _db_options["pool"]["min_size"] > _db_options["pool"]["max_size"]:
            raise ImproperlyConfigured("DB_POOL_MIN_SIZE cannot exceed DB_POOL_MAX_SIZE.")

# Read replicas: lag-tolerant reads only (common/db_replicas.py). Each gets the primary's
# settings and its own, shorter, connect timeout; a failing one is skipped for a cool-down.
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS")
DATABASE_REPLICA_CONNECT_TIMEOUT = env_int("DATABASE_REPLICA_CONNECT_TIMEOUT", 2, minimum=1)
DATABASE_REPLICA_COOLDOWN_SECONDS = env_float(
    "DATABASE_REPLICA_COOLDOWN_SECONDS", 30.0, minimum=1, maximum=3600
)
# The views whose GET reads may lag (namespace:url_name, shell-style patterns).
DATABASE_REPLICA_VIEWS = env_list(
    "DATABASE_REPLICA_VIEWS",
    ["admin:index", "admin:billing_dashboard", "admin:*_changelist", "api-usage"],
)
if DATABASE_REPLICA_URLS and _use_sqlite:
    raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL.")
for _index, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
    _replica = database_from_url("DATABASE_REPLICA_URLS", _url)
    DATABASES[f"replica_{_index}"] = {
        **DATABASES["default"],
        **_replica,
        # The primary's backend (and with it any connection pool it is configured with).
        "ENGINE": DATABASES["default"]["ENGINE"],
        "OPTIONS": {
            **DATABASES["default"].get("OPTIONS", {}),
            **_replica.get("OPTIONS", {}),
            "connect_timeout": DATABASE_REPLICA_CONNECT_TIMEOUT,
        },
        # Tests read the test database through every alias.
        "TEST": {"MIRROR": "default"},
    }
DATABASE_ROUTERS = ["common.db_replicas.ReplicaRouter"] if DATABASE_REPLICA_URLS else []
if DATABASE_REPLICA_URLS:
    # Last, so the lag-tolerant scope wraps the view alone.
    MIDDLEWARE.append("common.db_replicas.ReplicaReadsMiddleware")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# django-axes first: it refuses a locked-out account or address before a password is
# checked. Any later sign-in backend (SSO) goes after it and is throttled the same way.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Local passwords: everyone's, or with ADMIN_LOCAL_PASSWORDS=false platform staff's
    # only (a way in when the identity provider is down).
    "accounts.oidc.LocalPasswordBackend",
]

# --- Single sign-on to the admin (OpenID Connect, mozilla-django-oidc) ----------------
# On when OIDC_RP_CLIENT_ID is set. Users are created on their first sign-in; their
# organizations and roles come from the ID token's or userinfo's claims (accounts/oidc.py).
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT") or None
OIDC_RP_SIGN_ALGO = env_choice(
    "OIDC_RP_SIGN_ALGO", "RS256", ("RS256", "ES256", "HS256"), upper=True
)
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile") or "openid email profile"
OIDC_USERNAME_ALGO = "accounts.oidc.username_from_claims"
OIDC_CREATE_USER = True
# The claim naming the user's organizations (slugs: a string or a list), the claim with
# their groups, and which group gives which role ("group=role,..."; first match wins in
# the order admin, premium, basic; no match: DEFAULT_ROLE).
OIDC_ORGANIZATION_CLAIM = env_str("OIDC_ORGANIZATION_CLAIM", "organization") or "organization"
OIDC_ROLE_CLAIM = env_str("OIDC_ROLE_CLAIM", "groups") or "groups"
OIDC_ROLE_MAP = env_str("OIDC_ROLE_MAP", "admin=admin,premium=premium,basic=basic")
ADMIN_LOCAL_PASSWORDS = env_bool("ADMIN_LOCAL_PASSWORDS", True)
LOGIN_REDIRECT_URL = "/admin/"
LOGOUT_REDIRECT_URL = "/admin/login/"
if OIDC_RP_CLIENT_ID:
    AUTHENTICATION_BACKENDS.append("accounts.oidc.OrganizationOIDCBackend")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Cache, Redis, Celery, Channels --------------------------------------------------
# TLS (rediss://): the server's certificate is verified against the system's CAs, or
# REDIS_SSL_CA_CERTS. Heroku's Redis presents a self-signed certificate that no CA vouches
# for: REDIS_SSL_CERT_REQS=none accepts it, for the cache, limits, Celery and Channels alike.
REDIS_SSL_CERT_REQS = env_choice(
    "REDIS_SSL_CERT_REQS", "required", ("none", "optional", "required")
)
REDIS_SSL_CA_CERTS = env_str("REDIS_SSL_CA_CERTS")


def _redis_tls(url: str) -> str:
    return redis_tls_url(url, cert_reqs=REDIS_SSL_CERT_REQS, ca_certs=REDIS_SSL_CA_CERTS)


REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    REDIS_URL = _redis_tls(redis_url("REDIS_URL", REDIS_URL))
# REDIS_URL names any one node of a Redis Cluster (docs/decisions/0020).
REDIS_CLUSTER = env_bool("REDIS_CLUSTER", False)
try:
    REDIS_TARGET = redis_target(REDIS_URL, cluster=REDIS_CLUSTER) if REDIS_URL else None
except RedisUrlError as error:
    raise ImproperlyConfigured(f"REDIS_URL is not valid: {error}.") from None
if REDIS_CLUSTER and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_CLUSTER=true needs REDIS_URL (any node of the cluster).")
CACHE_TYPE = env_choice("CACHE_TYPE", "redis" if REDIS_URL else "memory", ("redis", "memory"))
if CACHE_TYPE == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("CACHE_TYPE=redis needs REDIS_URL.")
# Limits and budgets while Redis is unreachable: "local" counts in each process (each
# instance then enforces the whole limit on its own), "refuse" answers 503 with
# Retry-After. The cache is skipped and usage is written directly either way
# (common/outages.py; docs/decisions/0018).
REDIS_OUTAGE_POLICY = env_choice("REDIS_OUTAGE_POLICY", "local", ("local", "refuse"))
# During an outage Redis is tried again once per this many seconds, by one request.
REDIS_RETRY_SECONDS = env_float("REDIS_RETRY_SECONDS", 5.0, minimum=0.1, maximum=300)

# The hand-written fast paths (the pipelined Redis client and write batcher, the Daphne and
# Twisted tuning, the API's own ASGI handler); false restores the stock libraries throughout.
SYNTHLANG_FAST_PATHS = env_bool("SYNTHLANG_FAST_PATHS", True)

# The request pipeline's stages (proxy/pipeline, docs/decisions/0027): dotted paths of
# proxy.pipeline.stage.Stage subclasses, run in this order on a request and in reverse on
# its answer. SYNTHLANG_STAGES (comma-separated) replaces the whole list, so keep the
# built-ins (leaving out budget turns budgets off). The prompt library comes first: it
# renders a stored prompt in prepare, before admission, so every later stage (the cache key
# included) sees the rendered request; the tools it attaches are part of what the cache keys
# and the budget estimates.
SYNTHLANG_STAGES = env_list("SYNTHLANG_STAGES") or [  # empty or unset: the built-ins
    "prompts.stage.PromptStage",
    "tools.stage.ToolsStage",
    # Then the guardrails, so every later stage (the cache above all) sees masked text
    # only: docs/decisions/0031.
    "guardrails.stages.RulesStage",
    "guardrails.stages.PIIStage",
    "guardrails.stages.ModerationStage",
    "proxy.stages.cache.ResponseCacheStage",
    "proxy.stages.budget.BudgetStage",
    "proxy.stages.translation.TranslateStage",
    "proxy.stages.compression.CompressionStage",
]

if CACHE_TYPE == "redis" and REDIS_TARGET.is_sentinel:
    _credentials = ""
    if REDIS_TARGET.password:
        _credentials = f"{quote(REDIS_TARGET.username or '')}:{quote(REDIS_TARGET.password)}@"
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            # django-redis reads the master's name where a host would be.
            "LOCATION": f"redis://{_credentials}{REDIS_TARGET.master_name}/{REDIS_TARGET.db}",
            "KEY_PREFIX": "synthlang",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "SENTINELS": list(REDIS_TARGET.sentinels),
                "SENTINEL_KWARGS": REDIS_TARGET.sentinel_kwargs or None,
            },
        }
    }
elif CACHE_TYPE == "redis":
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "synthlang",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    if REDIS_CLUSTER:
        CACHES["default"]["OPTIONS"] = {
            "CLIENT_CLASS": "common.redis_cache.ClusterClient",
            "CONNECTION_FACTORY": "common.redis_cache.ClusterConnectionFactory",
        }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def _celery_url(name: str, url: str) -> tuple[str, dict]:
    """A Redis URL in the form Celery reads, and the transport options it needs."""
    if not url:
        return url, {}
    if not is_sentinel_url(url):
        return _redis_tls(url), {}
    try:
        target = redis_target(url)
    except RedisUrlError as error:
        raise ImproperlyConfigured(f"{name} is not valid: {error}.") from None
    return celery_sentinel_url(target), celery_sentinel_options(target)


_celery_broker_env = env_str("CELERY_BROKER_URL")
_celery_result_env = env_str("CELERY_RESULT_BACKEND")
if REDIS_CLUSTER and CACHE_TYPE == "redis":
    # Kombu and Celery's Redis backend speak to one server (or Sentinel): not to a Cluster.
    if not _celery_broker_env:
        raise ImproperlyConfigured(
            "REDIS_CLUSTER=true: Celery cannot use a Redis Cluster. Set CELERY_BROKER_URL to "
            "a separate Redis that is not a cluster (redis://, rediss:// or redis+sentinel://)."
        )
    if urlsplit(_celery_broker_env).netloc == urlsplit(REDIS_URL).netloc:
        raise ImproperlyConfigured(
            "REDIS_CLUSTER=true: CELERY_BROKER_URL names the cluster REDIS_URL names, and Celery "
            "cannot use a Redis Cluster. Set it to a separate Redis that is not a cluster."
        )
CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = _celery_url(
    "CELERY_BROKER_URL", _celery_broker_env or REDIS_URL
)
# Without a broker (the embedded default) tasks run in the calling process.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
# The tasks record their runs in the database (TaskRun); a result backend is optional.
CELERY_RESULT_BACKEND, CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = _celery_url(
    "CELERY_RESULT_BACKEND", _celery_result_env
)
CELERY_RESULT_BACKEND = CELERY_RESULT_BACKEND or None
# Celery reads these two variables from the environment itself, ahead of any setting
# (celery.app.utils.Settings): they must carry the same TLS options as the settings.
for _name, _value in (
    ("CELERY_BROKER_URL", CELERY_BROKER_URL),
    ("CELERY_RESULT_BACKEND", CELERY_RESULT_BACKEND),
):
    if os.environ.get(_name):
        os.environ[_name] = _value
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# The schedule lives in code, next to the tasks it runs.
CELERY_BEAT_SCHEDULE = {
    **BILLING_BEAT_SCHEDULE,
    **PROXY_BEAT_SCHEDULE,
    # Daily encrypted backup; retention pruning runs after each successful one.
    "ops-backup": {
        "task": "synthlang_site.tasks.backup_run",
        "schedule": crontab(hour=2, minute=45),
    },
}

# channels-redis has no Cluster support either: with a cluster, CHANNELS_REDIS_URL names a
# separate Redis. Without REDIS_URL, an in-process layer (one server process only).
CHANNELS_REDIS_URL = env_str("CHANNELS_REDIS_URL")
if CHANNELS_REDIS_URL:
    CHANNELS_REDIS_URL = _redis_tls(redis_url("CHANNELS_REDIS_URL", CHANNELS_REDIS_URL))
elif REDIS_URL and not REDIS_CLUSTER:
    CHANNELS_REDIS_URL = REDIS_URL
elif REDIS_CLUSTER and CACHE_TYPE == "redis":
    raise ImproperlyConfigured(
        "REDIS_CLUSTER=true: Channels (the admin's live feed) cannot use a Redis Cluster. Set "
        "CHANNELS_REDIS_URL to a separate Redis that is not a cluster (it may be Celery's)."
    )
if CHANNELS_REDIS_URL:
    try:
        _channels_host = channels_host(redis_target(CHANNELS_REDIS_URL))
    except RedisUrlError as error:
        raise ImproperlyConfigured(f"CHANNELS_REDIS_URL is not valid: {error}.") from None
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_channels_host]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- The proxy -----------------------------------------------------------------------
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_url("OPENAI_BASE_URL", "https://api.openai.com/v1")
DEFAULT_MODEL = env_str("DEFAULT_MODEL", "gpt-4o") or "gpt-4o"
USE_SYNTHLANG = env_bool("USE_SYNTHLANG", True)
ENABLE_CACHE = env_bool("ENABLE_CACHE", True)
# The cosine a reworded question needs once every check passed; empty: the embedder's own
# bar (docs/decisions/0004). Calibrate another value with `manage.py cache_eval` first.
CACHE_SIMILARITY_THRESHOLD = (
    env_float("CACHE_SIMILARITY_THRESHOLD", 0.0, minimum=0.0, maximum=1.0) or None
)
CACHE_MAX_ITEMS = env_int("CACHE_MAX_ITEMS", 1000, minimum=1)
CACHE_TTL_SECONDS = env_int("CACHE_TTL_SECONDS", 86_400, minimum=1)
# Above this temperature only exact repeats are served from the cache: a request for
# varied answers should not get a neighbour's answer.
CACHE_SEMANTIC_MAX_TEMPERATURE = env_float(
    "CACHE_SEMANTIC_MAX_TEMPERATURE", 1.0, minimum=0.0, maximum=2.0
)
# Embeddings for the semantic tier: the offline static WordLlama model (static; "local" is
# its former name), all-MiniLM-L6-v2 run offline (minilm: more recall, a little less
# precision on unseen pairs, docs/decisions/0004), or the upstream's OpenAI-compatible
# embeddings API (OPENAI_BASE_URL, OPENAI_API_KEY) with this model.
CACHE_EMBEDDER = env_choice("CACHE_EMBEDDER", "static", ("static", "local", "minilm", "upstream"))
CACHE_EMBEDDING_MODEL = (
    env_str("CACHE_EMBEDDING_MODEL", "text-embedding-3-small") or "text-embedding-3-small"
)
CACHE_EMBEDDING_DIMENSIONS = env_int("CACHE_EMBEDDING_DIMENSIONS", 512, minimum=8, maximum=8192)
# Prompts (text of all messages) and answers (JSON) longer than this are neither looked up
# nor stored: a document this size is rarely repeated and would weigh on Redis and the
# database (one 42 MB prompt became an 84 MB Redis value).
CACHE_MAX_ENTRY_CHARS = env_int(
    "CACHE_MAX_ENTRY_CHARS", 262_144, minimum=1_024, maximum=16 * 1024 * 1024
)
# Optional second opinion on borderline semantic candidates, by a cheap model through the
# organization's route, accounted as its usage. Empty: off.
CACHE_VERIFIER_MODEL = env_str("CACHE_VERIFIER_MODEL", "")
CACHE_VERIFIER_MAX_CALLS = env_int("CACHE_VERIFIER_MAX_CALLS", 1, minimum=1, maximum=5)
# Opt-in refresh of popular entries before they expire; 0 turns it off.
CACHE_WARM_MAX_USD_PER_DAY = env_float(
    "CACHE_WARM_MAX_USD_PER_DAY", 0.0, minimum=0.0, maximum=1_000_000
)

# Compression level used when USE_SYNTHLANG is on and neither the organization nor the
# request's x-synthlang-compression header says otherwise. `low` is the level that is safe on
# any text (lossless); organizations opt into medium or high in the admin.
SYNTHLANG_DEFAULT_LEVEL = env_choice(
    "SYNTHLANG_DEFAULT_LEVEL", "low", ("off", "low", "medium", "high")
)

# Translate mode: long system prompts compiled once into compact SynthLang by a cheap
# upstream model, used only when the result keeps every protected span.
SYNTHLANG_TRANSLATE = env_bool("SYNTHLANG_TRANSLATE", False)
SYNTHLANG_TRANSLATOR_MODEL = env_str("SYNTHLANG_TRANSLATOR_MODEL", "gpt-4o-mini") or "gpt-4o-mini"
SYNTHLANG_TRANSLATE_MIN_TOKENS = env_int("SYNTHLANG_TRANSLATE_MIN_TOKENS", 400, minimum=1)
SYNTHLANG_TRANSLATE_CACHE_SECONDS = env_float(
    "SYNTHLANG_TRANSLATE_CACHE_SECONDS", 30.0, minimum=0, maximum=3600
)
SYNTHLANG_TRANSLATE_RETRY_SECONDS = env_float(
    "SYNTHLANG_TRANSLATE_RETRY_SECONDS", 3600.0, minimum=1, maximum=7 * 86400
)
SYNTHLANG_TRANSLATE_MIN_RATIO = env_float(
    "SYNTHLANG_TRANSLATE_MIN_RATIO", 0.1, minimum=0.0, maximum=1.0
)

# Upstream calls: timeouts in seconds, retries with exponential backoff and jitter,
# and a cool-down for a deployment that keeps failing.
# Per attempt: a hung upstream (connected, silent) fails within a minute by default, and
# a read timeout moves on to the next deployment rather than waiting again on the same one.
# Raise UPSTREAM_READ_TIMEOUT for models that think for longer before a non-streamed answer.
UPSTREAM_CONNECT_TIMEOUT = env_float("UPSTREAM_CONNECT_TIMEOUT", 5.0, minimum=0.1, maximum=120)
# Non-streamed: the longest silence while waiting for (and reading) the answer.
UPSTREAM_READ_TIMEOUT = env_float("UPSTREAM_READ_TIMEOUT", 45.0, minimum=0.1, maximum=3600)
# Streamed: the longest silence before the first chunk and between two chunks.
UPSTREAM_STREAM_IDLE_TIMEOUT = env_float(
    "UPSTREAM_STREAM_IDLE_TIMEOUT", 30.0, minimum=0.1, maximum=3600
)
# The whole of one attempt, a long stream included.
UPSTREAM_TOTAL_TIMEOUT = env_float("UPSTREAM_TOTAL_TIMEOUT", 600.0, minimum=1, maximum=7200)
# The whole of one request's upstream work, across retries, backoff and fallbacks (for a
# stream: until its first chunk); then the client gets a 504 (request_timeout).
REQUEST_DEADLINE_SECONDS = env_float("REQUEST_DEADLINE_SECONDS", 60.0, minimum=0.1, maximum=7200)
UPSTREAM_MAX_RETRIES = env_int("UPSTREAM_MAX_RETRIES", 2, minimum=0, maximum=10)
UPSTREAM_BACKOFF_BASE = env_float("UPSTREAM_BACKOFF_BASE", 0.25, minimum=0, maximum=10)
UPSTREAM_BACKOFF_MAX = env_float("UPSTREAM_BACKOFF_MAX", 8.0, minimum=0, maximum=120)
UPSTREAM_POOL_SIZE = env_int("UPSTREAM_POOL_SIZE", 200, minimum=1)
# URLs an organization sets (its provider keys' base URLs, budget webhooks) must be https
# and reach public addresses only (common/outbound.py). Platform staff allow-list internal
# hosts here (names, addresses or networks such as 10.0.0.0/8; http is allowed to them
# too); OUTBOUND_ALLOW_HTTP allows plain http to any public host. OPENAI_BASE_URL, the
# operator's own choice, is never restricted.
OUTBOUND_ALLOWED_HOSTS = env_list("OUTBOUND_ALLOWED_HOSTS")
OUTBOUND_ALLOW_HTTP = env_bool("OUTBOUND_ALLOW_HTTP", False)

# Registered tools (tools/): how long a process keeps an organization's tools and rules
# before reading them again, and the largest tool answer the proxy relays.
TOOLS_CACHE_SECONDS = env_float("TOOLS_CACHE_SECONDS", 5.0, minimum=0.0, maximum=3600.0)
TOOLS_MAX_RESPONSE_BYTES = env_int("TOOLS_MAX_RESPONSE_BYTES", 1024 * 1024, minimum=1024)
# Largest API request body. Django's default (2.5 MB) refuses chat requests with a few
# images in base64; OpenAI takes up to 50 MB of images per request.
MAX_REQUEST_BODY_MB = env_int("MAX_REQUEST_BODY_MB", 50, minimum=1, maximum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_MB * 1024 * 1024
# Prompts with more characters of text than this are sent upstream as they are: neither
# compressed nor counted by the tokenizer on the request path (admission's character estimate
# stands until the upstream's usage settles it). Either would hold a core for seconds.
LARGE_PROMPT_CHARS = env_int("LARGE_PROMPT_CHARS", 1_000_000, minimum=10_000, maximum=1 << 30)
# Largest audio file for transcriptions and translations (OpenAI's limit: 25 MB) and
# largest file for /v1/files (OpenAI's: 512 MB); larger uploads are OpenAI's 413.
AUDIO_UPLOAD_MAX_MB = env_int("AUDIO_UPLOAD_MAX_MB", 25, minimum=1, maximum=1024)
FILE_UPLOAD_MAX_MB = env_int("FILE_UPLOAD_MAX_MB", 512, minimum=1, maximum=8192)
DEPLOYMENT_FAILURE_THRESHOLD = env_int("DEPLOYMENT_FAILURE_THRESHOLD", 3, minimum=1)
DEPLOYMENT_COOLDOWN_SECONDS = env_float(
    "DEPLOYMENT_COOLDOWN_SECONDS", 30.0, minimum=0, maximum=3600
)
ROUTE_CACHE_SECONDS = env_float("ROUTE_CACHE_SECONDS", 10.0, minimum=0, maximum=3600)
MODELS_CACHE_SECONDS = env_float("MODELS_CACHE_SECONDS", 300.0, minimum=0, maximum=86400)
# Completion tokens assumed for rate limits and budget reservations when a request
# sets no max_tokens; settled to the real count afterwards.
DEFAULT_COMPLETION_ESTIMATE = env_int("DEFAULT_COMPLETION_ESTIMATE", 256, minimum=0)
# The offline fake provider's simulated latency.
FAKE_LATENCY_MS = env_float("FAKE_LATENCY_MS", 0.0, minimum=0, maximum=60000)
# Where the fake provider keeps uploaded files and its batches ("": the system's temp dir).
FAKE_FILES_DIR = env_str("FAKE_FILES_DIR", "")

# Responses API answers stored with ``store: true`` are kept this many days (OpenAI: 30).
RESPONSES_RETENTION_DAYS = env_int("RESPONSES_RETENTION_DAYS", 30, minimum=1, maximum=3650)

# --- Billing ---------------------------------------------------------------------------
USAGE_RETENTION_DAYS = env_int("USAGE_RETENTION_DAYS", 90, minimum=1)
# Price of models missing from the price table: "IN" or "IN,OUT" dollars per million
# tokens; "0" prices them at nothing (and flags them).
UNKNOWN_MODEL_PRICE_PER_MTOK_USD = env_str("UNKNOWN_MODEL_PRICE_PER_MTOK_USD", "0") or "0"
USAGE_FLUSH_BATCH = env_int("USAGE_FLUSH_BATCH", 500, minimum=1)
USAGE_FLUSH_MAX_BATCHES = env_int("USAGE_FLUSH_MAX_BATCHES", 50, minimum=1)
USAGE_FLUSH_VISIBILITY_SECONDS = env_int("USAGE_FLUSH_VISIBILITY_SECONDS", 300, minimum=10)
USAGE_FLUSH_INTERVAL = env_float("USAGE_FLUSH_INTERVAL", 1.0, minimum=0.05, maximum=60)
# The embedded default (no broker) writes usage from a thread of the web process.
USAGE_FLUSH_IN_BACKGROUND = env_bool("USAGE_FLUSH_IN_BACKGROUND", True)
# Usage events the database could not take are appended here and replayed (billing/spool.py).
USAGE_SPOOL_DIR = env_str("USAGE_SPOOL_DIR") or str(BASE_DIR / "var" / "usage-spool")
PRICE_CACHE_SECONDS = env_float("PRICE_CACHE_SECONDS", 60.0, minimum=0, maximum=3600)
BUDGET_CACHE_SECONDS = env_float("BUDGET_CACHE_SECONDS", 5.0, minimum=0, maximum=3600)
BUDGET_WEBHOOK_TIMEOUT_SECONDS = env_float(
    "BUDGET_WEBHOOK_TIMEOUT_SECONDS", 5.0, minimum=0.1, maximum=60
)

ROLES = ("admin", "premium", "basic")
ADMIN_USERS = env_list("ADMIN_USERS")
PREMIUM_USERS = env_list("PREMIUM_USERS")
DEFAULT_ROLE = env_choice("DEFAULT_ROLE", "basic", ROLES)
# Requests and tokens per minute by role; 0 means unlimited.
ROLE_RATE_LIMITS = {
    "basic": {
        "rpm": env_int("BASIC_RPM", 60, minimum=0),
        "tpm": env_int("BASIC_TPM", 100_000, minimum=0),
    },
    "premium": {
        "rpm": env_int("PREMIUM_RPM", 600, minimum=0),
        "tpm": env_int("PREMIUM_TPM", 1_000_000, minimum=0),
    },
    "admin": {
        "rpm": env_int("ADMIN_RPM", 0, minimum=0),
        "tpm": env_int("ADMIN_TPM", 0, minimum=0),
    },
}
# Largest /v1 request body by role, in MB (never above MAX_REQUEST_BODY_MB); refused with a
# 413 before the body is parsed.
ROLE_MAX_BODY_BYTES = {
    role: min(env_int(f"{role.upper()}_MAX_BODY_MB", default, minimum=1), MAX_REQUEST_BODY_MB)
    * 1024
    * 1024
    for role, default in (("basic", 10), ("premium", 25), ("admin", MAX_REQUEST_BODY_MB))
}

# --- Brute force ---------------------------------------------------------------------
# Reverse proxies whose X-Forwarded-For is believed (addresses or networks, such as
# 127.0.0.1 for nginx on the same host or the load balancer's subnet). Empty: the
# connection's own peer is the client. Never the header's leftmost entry, which any
# client can write.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
# Admin sign-ins (django-axes, database-backed): after ADMIN_LOGIN_FAILURE_LIMIT failures
# an account, and separately an address, is locked for ADMIN_LOGIN_LOCKOUT_MINUTES.
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = timedelta(
    minutes=env_int("ADMIN_LOGIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=7 * 24 * 60)
)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "common.client_address.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_VERBOSE = False
# API keys: after KEY_LOOKUP_FAILURE_LIMIT requests with a wrong key in the window, an
# address gets 429 until the window ends (accounts/throttle.py; 0 switches it off).
KEY_LOOKUP_FAILURE_LIMIT = env_int("KEY_LOOKUP_FAILURE_LIMIT", 20, minimum=0)
KEY_LOOKUP_FAILURE_WINDOW_SECONDS = env_int(
    "KEY_LOOKUP_FAILURE_WINDOW_SECONDS", 300, minimum=1, maximum=86_400
)

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

# Django 6 makes https the default scheme of URL form fields; opt in now.
FORMS_URLFIELD_ASSUME_HTTPS = True
