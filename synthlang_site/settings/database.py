"""The database: DATABASE_URL (SQLite without it), psycopg's pool, read replicas."""

import os

from django.core.exceptions import ImproperlyConfigured

from synthlang_site.envconfig import (
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    sqlite_path,
)
from synthlang_site.settings.base import BASE_DIR, MIDDLEWARE

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
            # Kept open: a new connection parses the whole schema before its first query,
            # and the 5 s caches of keys, policies and tools reloaded on a fresh one each
            # time. A thread's connection closes with the thread, and SQLite has no server
            # whose connections could run out, the reason PostgreSQL's are pooled (0014).
            "CONN_MAX_AGE": None,
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
