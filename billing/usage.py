"""The usage write path: hand an event off in microseconds, store it later, exactly once.

``usage_record``/``ausage_record`` only append the event to a buffer: a Redis list in
production (shared by every proxy instance, drained by the Celery task ``usage_flush``)
or an in-process buffer in the embedded default (drained by a background thread of
the same process, since a Celery worker cannot see another process's memory).

Draining follows the reliable-queue pattern: a flush atomically moves a batch from
the buffer to its own processing list, writes it (idempotently, keyed by
``request_id``), and only then deletes the processing list. A flush that fails puts
its batch back; a flush that dies leaves its processing list behind, and a later
flush returns it to the buffer once it is older than the visibility timeout.

When Redis is down the in-process buffer takes the events (``common.outages``); when the
database is down, the in-process buffer's batches go to the disk spool (``billing.spool``)
and are replayed, idempotently, on a later flush and at start-up. The Redis buffer keeps
its own batches through a database outage.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from billing import services
from billing.pricing import usage_tokens
from billing.spool import usage_spool
from billing.usage_buffers import RedisBuffer, memory_buffer, usage_event_encode, usage_keys
from common.outages import (
    REDIS_ERRORS,
    is_outage_error,
    redis_configured,
    redis_outage,
    redis_usable,
)
from common.redis import sync_redis
from common.redis_writes import write_batcher

logger = logging.getLogger(__name__)


def _batch_size() -> int:
    return max(int(getattr(settings, "USAGE_FLUSH_BATCH", 500)), 1)


# --- The background flusher of the in-process buffer ---------------------------------------


class _Flusher:
    """One daemon thread per process that drains the in-process buffer.

    Woken when the buffer reaches a batch, otherwise every ``USAGE_FLUSH_INTERVAL``
    seconds, so the embedded server shows usage within a second without a Celery beat.
    """

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        if not getattr(settings, "USAGE_FLUSH_IN_BACKGROUND", True):
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="billing-usage-flusher", daemon=True
                )
                self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        from django.db import close_old_connections

        interval = float(getattr(settings, "USAGE_FLUSH_INTERVAL", 1.0))
        # The first pass runs at once: a start-up replays what a previous process spooled.
        self._wake.set()
        while True:
            self._wake.wait(timeout=interval)
            self._wake.clear()
            if not len(memory_buffer) and not usage_spool.pending():
                continue
            close_old_connections()
            try:
                usage_flush_run(redis=False)
            except Exception:
                # The batch went back to the buffer; try again on the next tick.
                logger.exception("usage flush of the in-process buffer failed; will retry")
                time.sleep(interval)
            finally:
                close_old_connections()


_flusher = _Flusher()


def usage_flusher_start() -> None:
    """Start this process's flusher now (a server at start-up): it replays the spool."""
    _flusher.ensure_started()


def usage_flush_before_exit() -> FlushStats | None:
    """Write, or spool, every event this process holds, in-flight batches included: the
    flusher is a daemon thread, and one stuck on a database that went away would take its
    batch with it when the interpreter ends."""
    memory_buffer.requeue_in_flight()
    if not len(memory_buffer):
        return None
    return usage_flush_run(redis=False, replay=False)


@atexit.register
def _flush_at_exit() -> None:
    # A clean shutdown (SIGTERM included) writes what is still buffered, or spools it.
    try:
        usage_flush_before_exit()
    except Exception:
        logger.exception("could not flush %s buffered usage events at exit", len(memory_buffer))
    usage_spool.close()


def _buffer_locally(event: dict) -> None:
    length = memory_buffer.push(dict(event))
    _flusher.ensure_started()
    if length >= _batch_size():
        _flusher.wake()


# --- The public hand-off --------------------------------------------------------------------


def background_usage_event(
    *,
    request_id: str,
    organization_id: int,
    model: str,
    upstream_model: str,
    provider: str,
    deployment: str,
    usage: dict | None,
    upstream_ms: float | None = None,
) -> dict:
    """The event for an upstream call no client request made (compiling a system prompt,
    refreshing a cache entry): the organization's own spend, with no member or key."""
    tokens = usage_tokens(usage)
    event = {
        "request_id": request_id,
        "created_at": datetime.now(tz=UTC).isoformat(),
        "organization_id": organization_id,
        "user_id": None,
        "api_key_id": None,
        "endpoint": "chat.completions",
        "model": model,
        "upstream_model": upstream_model,
        "provider": provider,
        "deployment": deployment,
        "prompt_tokens": tokens.prompt_tokens,
        "completion_tokens": tokens.completion_tokens,
        "cached_tokens": tokens.cache_read_tokens,
        "cache_write_tokens": tokens.cache_write_tokens,
        "compression_level": "off",
    }
    if upstream_ms is not None:
        event["upstream_ms"] = event["latency_ms"] = round(upstream_ms, 3)
    return event


def _request_flush_if_due(length: int) -> None:
    # One nudge per batch that fills up; beat drains the rest every few seconds.
    if length % _batch_size() == 0 and not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        from billing.tasks import usage_flush

        try:
            usage_flush.delay()
        except Exception:
            logger.warning("could not queue usage_flush; beat will pick the batch up")


def usage_record(event: dict) -> None:
    """Hand one usage event over for accounting. Never raises, never waits for the DB."""
    if redis_usable():
        started_at = time.monotonic()
        try:
            length = sync_redis().rpush(usage_keys().buffer, usage_event_encode(event))
        except REDIS_ERRORS as error:
            # Redis is down: keep the event in this process and write it from here
            # rather than lose it (reported once, by the outage).
            redis_outage.failed(error)
            _buffer_locally(event)
            return
        redis_outage.succeeded(started_at)
        _request_flush_if_due(int(length))
        return
    _buffer_locally(event)


async def ausage_record(event: dict) -> None:
    """``usage_record`` for the event loop: an async RPUSH, or an in-memory append."""
    if redis_usable():
        started_at = time.monotonic()
        try:
            # After the response: the push shares a round trip with other requests'.
            length = await write_batcher().rpush(usage_keys().buffer, usage_event_encode(event))
        except REDIS_ERRORS as error:
            redis_outage.failed(error)
            _buffer_locally(event)
            return
        redis_outage.succeeded(started_at)
        if int(length) % _batch_size() == 0:
            # Queuing a Celery message is blocking I/O: do it off the loop, in this
            # request's context (an executor copies none), so the task is in its trace.
            asyncio.get_running_loop().run_in_executor(
                None, contextvars.copy_context().run, _request_flush_if_due, int(length)
            )
        return
    _buffer_locally(event)


# --- Draining -------------------------------------------------------------------------------


@dataclass
class FlushStats:
    batches: int = 0
    events: int = 0
    written: int = 0
    duplicates: int = 0
    invalid: int = 0
    recovered: int = 0
    spooled: int = 0
    replayed: int = 0


def _drain(
    buffer, *, decode: bool, max_batches: int, stats: FlushStats, spool: bool = False
) -> None:
    visibility = float(getattr(settings, "USAGE_FLUSH_VISIBILITY_SECONDS", 300))
    stats.recovered += buffer.recover_stale(visibility)
    for _ in range(max_batches):
        flush_id, items = buffer.claim(_batch_size())
        if not items:
            return
        events, undecodable = [], []
        for item in items:
            if not decode:
                events.append(item)
                continue
            try:
                events.append(json.loads(item))
            except (ValueError, UnicodeDecodeError):
                undecodable.append(item)
        try:
            result = services.usage_events_write(events=events)
        except Exception as error:
            if spool and is_outage_error(error):
                # The database is away: to disk, not back to a buffer that dies with us.
                try:
                    usage_spool.write(events)
                except OSError:
                    logger.exception("could not spool %s usage events", len(events))
                    buffer.nack(flush_id)
                    raise error from None
                buffer.ack(flush_id)
                stats.spooled += len(events)
                continue
            buffer.nack(flush_id)
            raise
        invalid = undecodable + [
            usage_event_encode(event) if decode else event for event, _reason in result.invalid
        ]
        if invalid:
            # Retrying cannot fix a malformed event; keep it for a human, out of the way.
            logger.error("%s usage events could not be stored; dead-lettered", len(invalid))
            buffer.dead_letter(invalid)
        buffer.ack(flush_id)
        stats.batches += 1
        stats.events += len(items)
        stats.written += result.written
        stats.duplicates += result.duplicates
        stats.invalid += len(invalid)


def usage_flush_run(
    *, redis: bool | None = None, max_batches: int | None = None, replay: bool = True
) -> FlushStats:
    """Drain the buffers into the database; what the Celery task and the flusher call.

    ``redis=None`` drains whatever this process can see: the Redis buffer when it is
    configured, and always this process's own buffer and the disk spool (``replay``).
    """
    limit = max_batches or int(getattr(settings, "USAGE_FLUSH_MAX_BATCHES", 50))
    stats = FlushStats()
    if redis is not False and redis_configured():
        _drain(RedisBuffer(sync_redis()), decode=True, max_batches=limit, stats=stats)
    if redis is not True:
        if replay:
            stats.replayed += _replay_spool()
        _drain(memory_buffer, decode=False, max_batches=limit, stats=stats, spool=True)
    return stats


def _write_replayed(events: list[dict]) -> None:
    result = services.usage_events_write(events=events)
    if result.invalid:
        logger.error(
            "%s spooled usage events could not be stored; dead-lettered", len(result.invalid)
        )
        memory_buffer.dead_letter([event for event, _reason in result.invalid])


def _database_up() -> bool:
    from django.db import connection

    try:
        connection.ensure_connection()
    except Exception as error:
        if not is_outage_error(error):
            raise
        return False
    return True


def _replay_spool() -> int:
    try:
        return usage_spool.replay(_write_replayed, database_up=_database_up)
    except Exception as error:
        if not is_outage_error(error):
            raise
        return 0  # the database is still away; the files wait for the next flush


def usage_buffer_length() -> int:
    """Events waiting to be written (for health checks and metrics)."""
    length = len(memory_buffer)
    if redis_usable():
        try:
            length += len(RedisBuffer(sync_redis()))
        except REDIS_ERRORS as error:
            redis_outage.failed(error)
    return length
