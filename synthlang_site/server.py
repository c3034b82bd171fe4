"""One Daphne server process that stops without cutting anyone off.

Daphne on its own answers SIGTERM by stopping the reactor, which cancels every application
instance still running: a stream half-way through its answer is cut, and its accounting
after the response never runs. A platform sends SIGTERM on every deploy, scale-down and
restart, so the proxy drains instead (docs/decisions/0015-workers-and-graceful-restarts.md):

1. it stops accepting: the listening port is closed (with several workers on one shared
   socket, only this process's copy; the others keep accepting);
2. idle keep-alive connections are closed, requests in flight are answered with
   ``Connection: close``, websockets are closed with 1001 ("going away") so the live feed
   reconnects to another process;
3. it waits, up to ``SHUTDOWN_GRACE_SECONDS``, until every request has finished and the
   event loop has no work left (accounting after a response, the Redis write batch);
4. usage still buffered in this process (Redis was down) is written to the database;
5. then the reactor stops, and Daphne cancels whatever outlived the grace period.

A second SIGINT (Ctrl-C twice) stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import weakref

from daphne.cli import CommandLineInterface
from daphne.server import Server

logger = logging.getLogger("synthlang_site.server")

# How often the drain looks at what is left; two looks in a row with nothing running mean
# the loop is idle (longer than the Redis write batch's delay, so a write scheduled by the
# last request has become a task by the second look).
DRAIN_TICK_SECONDS = 0.05
# The usage flush at the end gets this long even when the grace period is spent.
FLUSH_TIMEOUT_SECONDS = 15.0


class GracefulServer(Server):
    """Daphne's server with the drain above in place of its immediate stop."""

    grace_seconds: float = 25.0
    # Called (no arguments) once the process listens; the supervisor's readiness signal.
    on_listening = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ports: list = []
        self._channels: weakref.WeakSet = weakref.WeakSet()
        self.draining = False

    def run(self):
        from twisted.internet import reactor

        # Our handlers, not Twisted's: Twisted's would stop the reactor at once.
        self.signal_handlers = False
        loop = reactor._asyncioEventloop
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._signalled, signum)
        super().run()

    def listen_success(self, port):
        super().listen_success(port)
        self._ports.append(port)
        if self.on_listening is not None:
            self.on_listening()

    def protocol_connected(self, protocol):
        super().protocol_connected(protocol)
        channel = getattr(protocol, "channel", None)
        if channel is not None:  # an HTTP request (websockets have no channel)
            self._channels.add(channel)
            if self.draining:
                _answer_with_close(protocol)

    # --- The drain -------------------------------------------------------------------------

    def _signalled(self, signum: int) -> None:
        if self.draining:
            if signum == signal.SIGINT:
                logger.warning("second interrupt: stopping without waiting for open requests")
                self.stop()
            return
        self.draining = True
        logger.info(
            "%s received: draining (up to %.0f s for open requests)",
            signal.Signals(signum).name,
            self.grace_seconds,
        )
        asyncio.ensure_future(self.drain())

    async def drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_seconds
        for port in self._ports:
            port.stopListening()
        for protocol in list(self.connections):
            if getattr(protocol, "channel", None) is None and hasattr(protocol, "serverClose"):
                protocol.serverClose(code=1001)  # a websocket: "going away"
            else:
                _answer_with_close(protocol)
        idle = await self._wait_until_idle(deadline)
        if not idle:
            logger.warning(
                "grace period over with %d request(s) still open; they are cut",
                self._open_requests(),
            )
        await _flush_local_usage(loop)
        logger.info("drained; stopping")
        self.stop()

    async def _wait_until_idle(self, deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        quiet_looks = 0
        while loop.time() < deadline:
            self._close_idle_channels()
            if self._open_requests() or _other_tasks(loop):
                quiet_looks = 0
            else:
                quiet_looks += 1
                if quiet_looks >= 2:
                    return True
            await asyncio.sleep(DRAIN_TICK_SECONDS)
        return False

    def _open_requests(self) -> int:
        return sum(
            1
            for details in self.connections.values()
            if details.get("application_instance") is not None
            and not details["application_instance"].done()
        )

    def _close_idle_channels(self) -> None:
        for channel in list(self._channels):
            transport = channel.transport
            if transport is None or not getattr(transport, "connected", False):
                continue
            if channel.requests:
                # Closed by Twisted once the response in flight is complete.
                channel.persistent = False
            else:
                transport.loseConnection()


def _answer_with_close(request) -> None:
    """Ask the client to reconnect (elsewhere) for its next request."""
    channel = getattr(request, "channel", None)
    if channel is not None:
        channel.persistent = False
    if not getattr(request, "startedWriting", True):
        request.responseHeaders.setRawHeaders(b"connection", [b"close"])


def _other_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task]:
    current = asyncio.current_task(loop)
    return [task for task in asyncio.all_tasks(loop) if task is not current and not task.done()]


async def _flush_local_usage(loop: asyncio.AbstractEventLoop) -> None:
    """Write the usage this process still holds (events buffered while Redis was down)."""
    from billing.usage import memory_buffer, usage_flush_before_exit

    if not memory_buffer.pending():
        return

    def flush() -> None:
        from django.db import close_old_connections

        try:
            stats = usage_flush_before_exit()
            if stats is not None:
                logger.info(
                    "wrote %d buffered usage event(s) before stopping, spooled %d",
                    stats.written,
                    stats.spooled,
                )
        finally:
            close_old_connections()

    try:
        await asyncio.wait_for(loop.run_in_executor(None, flush), FLUSH_TIMEOUT_SECONDS)
    except Exception:
        # The process's exit handler tries once more (billing.usage).
        logger.exception("could not write %d buffered usage event(s)", len(memory_buffer))


class _GracefulCommandLine(CommandLineInterface):
    server_class = GracefulServer


def serve(daphne_args: list[str], *, grace_seconds: float, on_listening=None) -> None:
    """Run Daphne's command line with the graceful server; returns when it has stopped."""
    GracefulServer.grace_seconds = grace_seconds
    GracefulServer.on_listening = staticmethod(on_listening) if on_listening else None
    cli = _GracefulCommandLine()
    cli.run(daphne_args)
    if cli.server.abort_start:
        sys.exit(1)
