"""Redis clients for code that needs more than Django's cache API (Lua, lists)."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aredis
from django.conf import settings

KEY_PREFIX = "synthlang:"

_async_clients: dict[int, aredis.Redis] = {}
_sync_client: redis.Redis | None = None


def redis_enabled() -> bool:
    return settings.CACHE_TYPE == "redis"


def async_redis() -> aredis.Redis:
    """One client (and connection pool) per event loop: pools are bound to their loop."""
    loop_id = id(asyncio.get_running_loop())
    client = _async_clients.get(loop_id)
    if client is None:
        # A blocking pool waits for a free connection instead of failing a request
        # when hundreds of streams finish at once.
        pool = aredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=512, timeout=10
        )
        client = aredis.Redis(connection_pool=pool)
        _async_clients[loop_id] = client
    return client


def sync_redis() -> redis.Redis:
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL)
    return _sync_client
