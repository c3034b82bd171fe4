"""Redis clients for code that needs more than Django's cache API (Lua, lists)."""

from __future__ import annotations

import asyncio
import threading
import weakref

import redis
import redis.asyncio as aredis
from django.conf import settings

KEY_PREFIX = "synthlang:"
# Redis answers on loopback or a LAN in milliseconds; a call that takes seconds means it
# is gone, and callers (usage buffer, limits) have their own fallbacks for that.
SOCKET_TIMEOUT_SECONDS = 2

# Keyed by the loop object itself, weakly: a pool belongs to one loop, and a closed
# loop's id may be reused by the next one.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_sync_client: redis.Redis | None = None
_sync_client_lock = threading.Lock()


def redis_enabled() -> bool:
    return settings.CACHE_TYPE == "redis"


def async_redis() -> aredis.Redis:
    """One client (and connection pool) per event loop: pools are bound to their loop."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # A blocking pool waits for a free connection instead of failing a request
        # when hundreds of streams finish at once.
        pool = aredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=512,
            timeout=10,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        )
        client = aredis.Redis(connection_pool=pool)
        _async_clients[loop] = client
    return client


def sync_redis() -> redis.Redis:
    """One pooled client per process for code outside the event loop."""
    global _sync_client
    if _sync_client is None:
        with _sync_client_lock:
            if _sync_client is None:
                _sync_client = redis.Redis.from_url(
                    settings.REDIS_URL,
                    socket_timeout=SOCKET_TIMEOUT_SECONDS,
                    socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                )
    return _sync_client
