"""Redis clients for code that needs more than Django's cache API (Lua, lists).

redis-py's clients for the deployment REDIS_URL names (one server, Sentinel or Cluster), and
``pipelined_redis()`` for the hot path: the hand-written connection of
``common.redis_pipeline`` when SYNTHLANG_FAST_PATHS is on and REDIS_URL is one server,
otherwise the same interface over redis-py's own client. Writes that may trail the response
are in ``common.redis_writes``.
"""

from __future__ import annotations

import asyncio
import threading
import weakref

import redis
import redis.asyncio as aredis
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from django.conf import settings
from redis.maint_notifications import MaintNotificationsConfig

from common.loops import forget_closed_loops
from common.outages import redis_configured
from common.redis_pipeline import SOCKET_TIMEOUT_SECONDS, PipelinedConnection
from common.redis_target import RedisTarget, redis_target

KEY_PREFIX = "synthlang:"

# Keyed by the loop object itself (a pool belongs to one loop, and a closed loop's id may be
# reused by the next one). The pool's connections refer to their loop, so the weak keys alone
# would never let a closed loop go: lookups also drop the entries of closed loops.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_sync_client: redis.Redis | None = None
_sync_client_lock = threading.Lock()


def redis_enabled() -> bool:
    """Whether shared state lives in Redis: the one predicate (``common.outages``), whose
    failure policy decides what happens when it does not answer."""
    return redis_configured()


def redis_clients_forget() -> None:
    """Drop this process's sync client, so the next call connects to REDIS_URL as it is
    now (tests that point it elsewhere); the per-loop clients go with their loops."""
    global _sync_client
    with _sync_client_lock:
        client, _sync_client = _sync_client, None
    if client is not None:
        client.close()


def redis_target_in_use() -> RedisTarget:
    """The deployment REDIS_URL names (settings may be changed by tests: read each time)."""
    url = settings.REDIS_URL
    cluster = getattr(settings, "REDIS_CLUSTER", False)
    target = _targets.get((url, cluster))
    if target is None:
        target = _targets[(url, cluster)] = redis_target(url, cluster=cluster)
    return target


_targets: dict[tuple[str, bool], RedisTarget] = {}


def fast_client_in_use() -> bool:
    """Whether the hand-written client below serves the hot path: only when the fast paths
    are on and REDIS_URL is one server (it follows neither Sentinel nor Cluster topology)."""
    return settings.SYNTHLANG_FAST_PATHS and redis_target_in_use().kind == "single"


_TIMEOUTS = {
    "socket_timeout": SOCKET_TIMEOUT_SECONDS,
    "socket_connect_timeout": SOCKET_TIMEOUT_SECONDS,
}
# redis-py's pools check that a pooled connection is still open (and reconnect if not)
# before handing it out, but skip that check while maintenance notifications (a Redis
# Enterprise/Cloud feature) are on, which their default "auto" counts as. Skipped, every
# connection opened before a Redis restart failed its next command, one outage per pooled
# connection after Redis was already back (decision 0018).
_POOL_CHECKS = {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


def async_redis() -> aredis.Redis:
    """One client (and connection pool) per event loop: pools are bound to their loop."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        forget_closed_loops(_async_clients)
        client = _async_clients[loop] = _new_async_client(redis_target_in_use())
    return client


def _new_async_client(target: RedisTarget):
    if target.is_sentinel:
        sentinel = aredis.sentinel.Sentinel(
            list(target.sentinels), sentinel_kwargs={**_TIMEOUTS, **target.sentinel_kwargs}
        )
        return sentinel.master_for(target.master_name, **_TIMEOUTS, **target.master_kwargs())
    if target.is_cluster:
        return aredis.cluster.RedisCluster.from_url(target.url, **_TIMEOUTS)
    # A blocking pool waits for a free connection instead of failing a request when
    # hundreds of streams finish at once.
    pool = aredis.BlockingConnectionPool.from_url(
        target.url, max_connections=512, timeout=10, **_TIMEOUTS, **_POOL_CHECKS
    )
    return aredis.Redis(connection_pool=pool)


def sync_redis() -> redis.Redis:
    """One pooled client per process for code outside the event loop."""
    global _sync_client
    if _sync_client is None:
        with _sync_client_lock:
            if _sync_client is None:
                _sync_client = _new_sync_client(redis_target_in_use())
    return _sync_client


def _new_sync_client(target: RedisTarget):
    if target.is_sentinel:
        sentinel = redis.sentinel.Sentinel(
            list(target.sentinels), sentinel_kwargs={**_TIMEOUTS, **target.sentinel_kwargs}
        )
        return sentinel.master_for(target.master_name, **_TIMEOUTS, **target.master_kwargs())
    if target.is_cluster:
        return redis.cluster.RedisCluster.from_url(target.url, **_TIMEOUTS)
    return redis.Redis.from_url(target.url, **_TIMEOUTS, **_POOL_CHECKS)


# Per event loop, like the clients above (see common.loops).
_pipelined: dict[asyncio.AbstractEventLoop, PipelinedConnection] = {}


def pipelined_redis() -> PipelinedConnection | StockConnection:
    """The running loop's pipelined connection to REDIS_URL (redis-py's client instead when
    the fast client is not in use)."""
    if not fast_client_in_use():
        return _STOCK_CONNECTION
    loop = asyncio.get_running_loop()
    connection = _pipelined.get(loop)
    if connection is None:
        forget_closed_loops(_pipelined, PipelinedConnection.abandon)
        connection = _pipelined[loop] = PipelinedConnection(settings.REDIS_URL)
    return connection


# --- The same interfaces over redis-py (fast paths off, Sentinel, Cluster) -------------------


class StockConnection:
    """``PipelinedConnection``'s interface on redis-py's client for the running loop, which
    follows Sentinel failovers and Cluster slots itself."""

    async def execute(self, *args):
        return await async_redis().execute_command(*args)

    async def execute_many(self, commands: list[tuple], *, raise_errors: bool = True) -> list:
        pipe = async_redis().pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=raise_errors)

    async def evalsha(self, script: str, sha: str, keys: list, args: list):
        client = async_redis()
        try:
            return await client.evalsha(sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return await client.eval(script, len(keys), *keys, *args)


_STOCK_CONNECTION = StockConnection()
