"""Redis clients for code that needs more than Django's cache API (Lua, lists)."""

from __future__ import annotations

import asyncio
import collections
import ssl
import threading
import weakref

import hiredis
import redis
import redis.asyncio as aredis
from django.conf import settings
from redis.connection import parse_url

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


# --- One pipelined connection for the hot path ---------------------------------------------

# NOSCRIPT: the server does not have the script (restarted, flushed); send its text once.
_NOSCRIPT_PREFIX = "NOSCRIPT"


def _pack(args: tuple) -> bytes:
    """A command in Redis's wire format (RESP)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int | float):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _ReplyProtocol(asyncio.Protocol):
    """Matches replies to callers: Redis answers one connection's commands in order."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[asyncio.Future] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if not self.waiting:
                # A reply nobody asked for: the stream cannot be trusted any more.
                self.close(redis.exceptions.ConnectionError("unexpected reply from Redis"))
                return
            future = self.waiting.popleft()
            if not future.done():
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(_response_error(str(reply)))
                else:
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail_all(
            redis.exceptions.ConnectionError(f"Redis connection lost: {exc or 'closed'}")
        )

    def close(self, error: Exception) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()
        self._fail_all(error)

    def _fail_all(self, error: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


def _response_error(message: str) -> redis.exceptions.ResponseError:
    if message.startswith(_NOSCRIPT_PREFIX):
        return redis.exceptions.NoScriptError(message)
    return redis.exceptions.ResponseError(message)


class PipelinedConnection:
    """One Redis connection per event loop whose callers' commands are written back to back.

    For the commands every request makes (rate-limit admission, the write batch). redis-py's
    pool check-out, retry wrapper and generic command plumbing cost about 150 µs of the event
    loop's CPU per call here, a bare protocol with hiredis's parser about 30 µs. Redis answers
    the commands of one connection in order, so a queue pairs replies with callers, and one
    connection serves any number of concurrent callers without waiting for each other.

    Errors are redis-py's exception classes, so callers' handlers stay the same. A command
    without an answer in SOCKET_TIMEOUT_SECONDS closes the connection (the order of later
    replies could no longer be trusted); the next command opens a new one.
    """

    def __init__(self, url: str) -> None:
        self._options = parse_url(url)
        self._protocol: _ReplyProtocol | None = None
        self._connecting: asyncio.Future | None = None

    async def execute(self, *args):
        (reply,) = await self.execute_many([args])
        return reply

    async def execute_many(self, commands: list[tuple]) -> list:
        """Send the commands in one write; their replies, in order. An error reply raises
        (the first one, after every reply has arrived)."""
        protocol = await self._connected()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        protocol.waiting.extend(futures)
        protocol.transport.write(b"".join(_pack(command) for command in commands))
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT_SECONDS):
                results = await asyncio.gather(*futures, return_exceptions=True)
        except TimeoutError:
            protocol.close(redis.exceptions.TimeoutError("Redis did not answer in time"))
            raise redis.exceptions.TimeoutError("Redis did not answer in time") from None
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    async def evalsha(self, script: str, sha: str, keys: list, args: list):
        """Run a Lua script by its SHA1, loading it by its text if the server lacks it."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return await self.execute("EVAL", script, len(keys), *keys, *args)

    async def _connected(self) -> _ReplyProtocol:
        protocol = self._protocol
        if protocol is not None and not protocol.lost:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done():
                self._connecting = None

    async def _connect(self) -> _ReplyProtocol:
        options = self._options
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT_SECONDS):
                if "path" in options:
                    _transport, protocol = await loop.create_unix_connection(
                        _ReplyProtocol, options["path"]
                    )
                else:
                    tls = options.get("connection_class") is redis.connection.SSLConnection
                    _transport, protocol = await loop.create_connection(
                        _ReplyProtocol,
                        options.get("host", "localhost"),
                        options.get("port", 6379),
                        ssl=ssl.create_default_context() if tls else None,
                    )
        except (OSError, TimeoutError) as error:
            raise redis.exceptions.ConnectionError(f"cannot connect to Redis: {error}") from error
        self._protocol = protocol
        setup = []
        if options.get("password"):
            setup.append(
                ("AUTH", options["username"], options["password"])
                if options.get("username")
                else ("AUTH", options["password"])
            )
        if options.get("db"):
            setup.append(("SELECT", options["db"]))
        if setup:
            try:
                await self.execute_many(setup)
            except BaseException:
                protocol.close(redis.exceptions.ConnectionError("Redis refused the connection"))
                raise
        return protocol


_pipelined: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pipelined_redis() -> PipelinedConnection:
    """The running loop's pipelined connection to REDIS_URL."""
    loop = asyncio.get_running_loop()
    connection = _pipelined.get(loop)
    if connection is None:
        connection = _pipelined[loop] = PipelinedConnection(settings.REDIS_URL)
    return connection


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
        commands: list[tuple] = []
        for key, (amount, expire_seconds, _futures) in increments.items():
            commands += [("INCRBY", key, amount), ("EXPIRE", key, expire_seconds)]
        for key, items in pushes.items():
            commands.append(("RPUSH", key, *(value for value, _future in items)))
        try:
            replies = await pipelined_redis().execute_many(commands)
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
