"""The hand-written Redis connection of the hot path: commands of many callers pipelined.

``common.redis.pipelined_redis()`` hands it out, one per event loop, when SYNTHLANG_FAST_PATHS
is on and REDIS_URL is one server (it follows neither Sentinel nor Cluster topology).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl

import hiredis
import redis
from redis.connection import parse_url

# Redis answers on loopback or a LAN in milliseconds; a call that takes seconds means it
# is gone, and callers (usage buffer, limits) have their own fallbacks for that.
SOCKET_TIMEOUT_SECONDS = 2

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
