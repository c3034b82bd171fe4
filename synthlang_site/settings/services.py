"""The shared services: Redis (cache, limits, Sentinel, Cluster, TLS), Celery and Channels."""

import os
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
    env_bool,
    env_choice,
    env_float,
    env_str,
    redis_tls_url,
    redis_url,
)

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
