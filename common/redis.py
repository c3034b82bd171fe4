"""Redis clients for code that needs more than Django's cache API (Lua, lists).

redis-py's clients for the deployment REDIS_URL names (one server, Sentinel or Cluster), and
for the hot path a hand-written pipelined connection and write batcher, used only when
SYNTHLANG_FAST_PATHS is on and REDIS_URL is one server; otherwise ``pipelined_redis()`` and
``write_batcher()`` hand out the same interface over redis-py's own client.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import threading
import weakref

import hiredis
import redis
import redis.asyncio as aredis
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from django.conf import settings
from redis.connection import parse_url
from redis.maint_notifications import MaintNotificationsConfig

from common.loops import forget_closed_loops
from common.outages import redis_configured
from common.redis_target import RedisTarget, redis_target

KEY_PREFIX = "synthlang:"
# Redis answers on loopback or a LAN in milliseconds; a call that takes seconds means it
# is gone, and callers (usage buffer, limits) have their own fallbacks for that.
SOCKET_TIMEOUT_SECONDS = 2

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


# --- One pipelined connection for the hot path ---------------------------------------------

# NOSCRIPT: the server does not have the script (restarted, flushed); send its text once.
_NOSCRIPT_PREFIX = "NOSCRIPT"
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def _pack(args: tuple) -> bytes:
    """A command in Redis's wire format (RESP)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int | float) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _tls_context(options: dict) -> ssl.SSLContext:
    """The TLS checks redis-py makes for the same URL (``ssl_cert_reqs``, ``ssl_ca_certs``,
    ``ssl_check_hostname``...), so both clients accept exactly the same servers: settings add
    ``ssl_cert_reqs=none`` to rediss:// URLs for managed Redis with self-signed certificates."""
    context = ssl.create_default_context(
        cafile=options.get("ssl_ca_certs"), capath=options.get("ssl_ca_path")
    )
    required = options.get("ssl_cert_reqs", "required")
    if isinstance(required, str):
        required = _CERT_REQS[required.lower()]
    # The hostname check must be off before verification may be turned off.
    context.check_hostname = bool(options.get("ssl_check_hostname", True)) and (
        required != ssl.CERT_NONE
    )
    context.verify_mode = required
    if options.get("ssl_certfile"):
        context.load_cert_chain(
            options["ssl_certfile"], options.get("ssl_keyfile"), options.get("ssl_password")
        )
    return context


class _ReplyProtocol(asyncio.Protocol):
    """Matches replies to callers: Redis answers one connection's commands in order."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        # (caller's future, loop time by which Redis must have answered), in sending order.
        self.waiting: collections.deque[tuple[asyncio.Future, float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def expect(self, futures: list[asyncio.Future], timeout: float) -> None:
        """Queue replies for ``futures``, each due within ``timeout`` seconds.

        One timer per connection watches the oldest unanswered command, rather than one
        per command: arming and cancelling a timer for every command cost more of the
        loop's time than writing the command. Replies come in order, so when the oldest
        command is on time, so is everything behind it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.waiting.extend((future, deadline) for future in futures)
        if self._watchdog is None:
            self._watchdog = loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._watchdog = None
        if not self.waiting or self.lost:
            return
        loop = asyncio.get_running_loop()
        oldest_deadline = self.waiting[0][1]
        if oldest_deadline <= loop.time():
            self.close(redis.exceptions.TimeoutError, "Redis did not answer in time")
        else:
            self._watchdog = loop.call_at(oldest_deadline, self._check_deadline)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if not self.waiting:
                # A reply nobody asked for: the stream cannot be trusted any more.
                self.close(redis.exceptions.ConnectionError, "unexpected reply from Redis")
                return
            future, _deadline = self.waiting.popleft()
            if not future.done():
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(_response_error(str(reply)))
                else:
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail_all(
            redis.exceptions.ConnectionError, f"Redis connection lost: {exc or 'closed'}"
        )

    def close(self, error_class: type[Exception], message: str) -> None:
        self.lost = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.transport is not None:
            self.transport.close()
        self._fail_all(error_class, message)

    def _fail_all(self, error_class: type[Exception], message: str) -> None:
        # One exception per caller: a shared instance would collect every caller's traceback.
        while self.waiting:
            future, _deadline = self.waiting.popleft()
            if not future.done():
                future.set_exception(error_class(message))


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
    replies could no longer be trusted); the next command opens a new one. The connection is
    handed out only once AUTH and SELECT have succeeded, so no command can run as another
    user or in another database.
    """

    def __init__(self, url: str) -> None:
        self._options = parse_url(url)
        self._protocol: _ReplyProtocol | None = None
        self._connecting: asyncio.Future | None = None

    async def execute(self, *args):
        (reply,) = await self.execute_many([args])
        return reply

    async def execute_many(self, commands: list[tuple], *, raise_errors: bool = True) -> list:
        """Send the commands in one write; their replies, in order. With ``raise_errors`` an
        error reply raises (the first one, once every reply has arrived); without, error
        replies come back in the list as exceptions."""
        protocol = await self._connected()
        results = await self._send(protocol, commands)
        if raise_errors:
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

    @staticmethod
    async def _send(protocol: _ReplyProtocol, commands: list[tuple]) -> list:
        loop = asyncio.get_running_loop()
        # Packed before any reply is expected: a command that cannot be sent (TypeError)
        # must not leave a future queued that would take the next command's reply.
        payload = b"".join(_pack(command) for command in commands)
        futures = [loop.create_future() for _ in commands]
        protocol.expect(futures, SOCKET_TIMEOUT_SECONDS)
        protocol.transport.write(payload)
        if len(futures) == 1:
            try:
                results = [await futures[0]]
            except Exception as error:  # an error reply, or the connection failed
                results = [error]
        else:
            results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            # Only the watchdog makes these (Redis's own errors are ResponseErrors): the
            # whole round trip failed, not one command.
            if isinstance(result, redis.exceptions.TimeoutError):
                raise redis.exceptions.TimeoutError(str(result))
        return results

    async def _connected(self) -> _ReplyProtocol:
        protocol = self._protocol
        if protocol is not None and not protocol.lost:
            return protocol
        if self._connecting is None:
            connecting = asyncio.ensure_future(self._connect())
            self._connecting = connecting
            # Cleared when the attempt ends, whether or not anyone is still waiting for it:
            # a later caller must start a new attempt, never reuse a finished one.
            connecting.add_done_callback(self._connect_finished)
        protocol = await asyncio.shield(self._connecting)
        if protocol.lost:
            # Lost between connecting and this caller resuming: fail now, the next call
            # reconnects (rather than writing to a closed transport and waiting for nothing).
            raise redis.exceptions.ConnectionError("Redis connection lost")
        return protocol

    def _connect_finished(self, attempt: asyncio.Future) -> None:
        if self._connecting is attempt:
            self._connecting = None
        if not attempt.cancelled():
            attempt.exception()  # retrieved here; the callers waiting on it get it raised

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
                        ssl=_tls_context(options) if tls else None,
                    )
        except (OSError, TimeoutError) as error:
            raise redis.exceptions.ConnectionError(f"cannot connect to Redis: {error}") from error
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
                replies = await self._send(protocol, setup)
            except BaseException:
                protocol.close(redis.exceptions.ConnectionError, "Redis connection set-up failed")
                raise
            refused = [reply for reply in replies if isinstance(reply, BaseException)]
            if refused:
                protocol.close(redis.exceptions.ConnectionError, "Redis refused the connection")
                raise redis.exceptions.ConnectionError(
                    f"Redis refused the connection: {refused[0]}"
                )
        self._protocol = protocol
        return protocol

    def abandon(self) -> None:
        """Close the connection without a running loop (its loop has been closed)."""
        protocol = self._protocol
        self._protocol = None
        if protocol is not None and protocol.transport is not None:
            # The transport cannot close itself without its loop; shutting the socket down
            # ends the session at once, and the descriptor goes with the dropped transport.
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


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


# --- Writes that may trail the response --------------------------------------------------

# How long a write waits for others to share its round trip. Each round trip costs the event
# loop 100-170 µs of CPU; the writes batched here (rate-limit token settlement, usage events)
# happen after the response is sent, so a few milliseconds of delay cost the client nothing.
BATCH_DELAY_SECONDS = 0.01


class WriteBatcher:
    """Collects INCRBY and RPUSH writes for a moment and sends them as one pipeline.

    Increments to the same key are summed; values pushed to the same list go in one RPUSH.
    Each caller awaits its own write as if it had sent it alone: it returns once Redis has
    it, and raises if its own command failed (or the whole round trip did), so fallbacks
    stay the caller's. Bound to one event loop, like the connection it uses.
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
            replies = await pipelined_redis().execute_many(commands, raise_errors=False)
        except BaseException as error:
            # Nothing reached Redis (or nothing is known to have): every caller learns it.
            message = str(error) or type(error).__name__
            failure = type(error) if isinstance(error, Exception) else ConnectionError
            for _amount, _expire, futures in increments.values():
                for future in futures:
                    _settle(future, error=failure(message))
            for items in pushes.values():
                for _value, future in items:
                    _settle(future, error=failure(message))
            if not isinstance(error, Exception):
                raise
            return
        # Each caller gets its own command's outcome: an error on one key fails only the
        # callers of that key.
        position = 0
        for _amount, _expire, futures in increments.values():
            failed = next(
                (r for r in replies[position : position + 2] if isinstance(r, Exception)), None
            )
            for future in futures:
                _settle(future, error=failed)
            position += 2
        for items, length in zip(pushes.values(), replies[position:], strict=True):
            if isinstance(length, Exception):
                for _value, future in items:
                    _settle(future, error=length)
                continue
            first = int(length) - len(items)
            for offset, (_value, future) in enumerate(items, start=1):
                _settle(future, result=first + offset)


def _settle(future: asyncio.Future, *, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_batchers: dict[asyncio.AbstractEventLoop, WriteBatcher] = {}


def write_batcher() -> WriteBatcher | DirectWrites:
    """The running loop's batcher (its writes go through that loop's client); each write
    its own redis-py round trip when the fast client is not in use."""
    if not fast_client_in_use():
        return _DIRECT_WRITES
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        forget_closed_loops(_batchers)
        batcher = _batchers[loop] = WriteBatcher(loop)
    return batcher


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


class DirectWrites:
    """``WriteBatcher``'s interface, each write sent when it is made."""

    async def incrby(self, key: str, amount: int, *, expire_seconds: int) -> None:
        pipe = async_redis().pipeline(transaction=False)
        pipe.incrby(key, amount)
        pipe.expire(key, expire_seconds)
        await pipe.execute()

    async def rpush(self, key: str, value: str) -> int:
        return await async_redis().rpush(key, value)


_STOCK_CONNECTION = StockConnection()
_DIRECT_WRITES = DirectWrites()
