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


# --- Writes that may trail the response --------------------------------------------------

# How long a write waits for others to share its round trip. Each round trip costs the event
# loop 100-170 µs of CPU; the writes batched here (rate-limit token settlement, usage events)
# happen after the response is sent, so a few milliseconds of delay cost the client nothing.
BATCH_DELAY_SECONDS = 0.01

_batchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class WriteBatcher:
    """Collects INCRBY and RPUSH writes for a moment and sends them as one pipeline.

    Increments to the same key are summed; values pushed to the same list go in one RPUSH.
    Each caller awaits its own write as if it had sent it alone: it returns once Redis has
    it, and a failure is raised to every caller of that batch, so fallbacks stay the
    caller's. Bound to one event loop, like the client it uses.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._increments: dict[str, list] = {}  # key -> [total, expire seconds, futures]
        self._pushes: dict[str, list] = {}  # key -> [(value, future), ...]
        self._scheduled = False
        self._flushes: set[asyncio.Task] = set()

    def incrby(self, key: str, amount: int, *, expire_seconds: int) -> asyncio.Future:
        future = self._loop.create_future()
        pending = self._increments.get(key)
        if pending is None:
            self._increments[key] = [amount, expire_seconds, [future]]
        else:
            pending[0] += amount
            pending[1] = max(pending[1], expire_seconds)
            pending[2].append(future)
        self._schedule()
        return future

    def rpush(self, key: str, value: str) -> asyncio.Future:
        """Resolves to the list's length just after this value, as RPUSH would answer."""
        future = self._loop.create_future()
        self._pushes.setdefault(key, []).append((value, future))
        self._schedule()
        return future

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_later(BATCH_DELAY_SECONDS, self._start_flush)

    def _start_flush(self) -> None:
        self._scheduled = False
        increments, self._increments = self._increments, {}
        pushes, self._pushes = self._pushes, {}
        task = self._loop.create_task(self._flush(increments, pushes))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, increments: dict[str, list], pushes: dict[str, list]) -> None:
        pipe = async_redis().pipeline(transaction=False)
        for key, (amount, expire_seconds, _futures) in increments.items():
            pipe.incrby(key, amount)
            pipe.expire(key, expire_seconds)
        for key, items in pushes.items():
            pipe.rpush(key, *(value for value, _future in items))
        try:
            replies = await pipe.execute()
        except BaseException as error:
            failure = error if isinstance(error, Exception) else ConnectionError(str(error))
            for _amount, _expire, futures in increments.values():
                for future in futures:
                    _settle(future, error=failure)
            for items in pushes.values():
                for _value, future in items:
                    _settle(future, error=failure)
            if not isinstance(error, Exception):
                raise
            return
        for _amount, _expire, futures in increments.values():
            for future in futures:
                _settle(future, result=None)
        lengths = replies[2 * len(increments) :]
        for (_key, items), length in zip(pushes.items(), lengths, strict=True):
            first = int(length) - len(items)
            for position, (_value, future) in enumerate(items, start=1):
                _settle(future, result=first + position)


def _settle(future: asyncio.Future, *, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def write_batcher() -> WriteBatcher:
    """The running loop's batcher (its writes go through that loop's client)."""
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = WriteBatcher(loop)
    return batcher
