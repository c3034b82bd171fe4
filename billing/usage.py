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
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from billing import services
from billing.pricing import usage_tokens
from billing.spool import usage_spool
from common.outages import (
    REDIS_ERRORS,
    is_outage_error,
    redis_configured,
    redis_outage,
    redis_usable,
)
from common.redis import redis_target_in_use, sync_redis, write_batcher

logger = logging.getLogger(__name__)

BUFFER_KEY = "synthlang:billing:usage:buffer"
PROCESSING_INDEX_KEY = "synthlang:billing:usage:processing"
PROCESSING_KEY_PREFIX = "synthlang:billing:usage:processing:"
DEAD_LETTER_KEY = "synthlang:billing:usage:dead"


@dataclass(frozen=True)
class UsageKeys:
    buffer: str
    processing_index: str
    processing_prefix: str
    dead_letter: str


_KEYS = UsageKeys(BUFFER_KEY, PROCESSING_INDEX_KEY, PROCESSING_KEY_PREFIX, DEAD_LETTER_KEY)
# On a Redis Cluster the claim and requeue scripts' keys must share one slot: the same names
# with a hash tag. One server and Sentinel keep the names events were buffered under before
# (an upgrade must not strand them); a cluster is new, so it has no such events.
_CLUSTER_KEYS = UsageKeys(
    "synthlang:billing:{usage}:buffer",
    "synthlang:billing:{usage}:processing",
    "synthlang:billing:{usage}:processing:",
    "synthlang:billing:{usage}:dead",
)


def usage_keys() -> UsageKeys:
    """The buffer's key names for the Redis in use."""
    return _CLUSTER_KEYS if redis_target_in_use().is_cluster else _KEYS


def _batch_size() -> int:
    return max(int(getattr(settings, "USAGE_FLUSH_BATCH", 500)), 1)


def _encode(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"), default=str)


# --- Redis buffer --------------------------------------------------------------------------

# Move up to ARGV[1] events from the buffer to this flush's processing list, and note
# when it claimed them, in one atomic step: no event is ever in neither list.
_CLAIM_LUA = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then return items end
redis.call('LTRIM', KEYS[1], #items, -1)
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return items
"""

# Return a processing list to the buffer (a failed flush, or a stale one of a dead
# flush) and forget it. ARGV[2] > 0 only requeues when the claim is still that old, so
# a flush that finished in the meantime is not undone.
_REQUEUE_LUA = """
local claimed = redis.call('ZSCORE', KEYS[3], ARGV[1])
if tonumber(ARGV[2]) > 0 and (not claimed or tonumber(claimed) > tonumber(ARGV[2])) then
  return 0
end
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return #items
"""


class RedisBuffer:
    def __init__(self, client) -> None:
        self.client = client
        self.keys = usage_keys()
        self._claim = client.register_script(_CLAIM_LUA)
        self._requeue = client.register_script(_REQUEUE_LUA)

    def claim(self, limit: int) -> tuple[str, list]:
        flush_id = uuid.uuid4().hex
        keys = self.keys
        items = self._claim(
            keys=[keys.buffer, keys.processing_prefix + flush_id, keys.processing_index],
            args=[limit, flush_id, time.time()],
        )
        return flush_id, list(items)

    def ack(self, flush_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.processing_prefix + flush_id)
        pipe.zrem(self.keys.processing_index, flush_id)
        pipe.execute()

    def nack(self, flush_id: str) -> None:
        keys = self.keys
        self._requeue(
            keys=[keys.processing_prefix + flush_id, keys.buffer, keys.processing_index],
            args=[flush_id, 0],
        )

    def recover_stale(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        keys = self.keys
        recovered = 0
        for raw in self.client.zrangebyscore(self.keys.processing_index, "-inf", cutoff):
            flush_id = raw.decode() if isinstance(raw, bytes) else raw
            recovered += int(
                self._requeue(
                    keys=[keys.processing_prefix + flush_id, keys.buffer, keys.processing_index],
                    args=[flush_id, cutoff],
                )
            )
        return recovered

    def dead_letter(self, items: list) -> None:
        self.client.rpush(self.keys.dead_letter, *items)

    def __len__(self) -> int:
        return int(self.client.llen(self.keys.buffer))


# --- In-process buffer ---------------------------------------------------------------------


class MemoryBuffer:
    """The embedded mode's buffer. Single process by design (see docs/decisions/0006)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque = deque()
        self._processing: dict[str, list] = {}
        self.dead: list = []

    def push(self, item) -> int:
        with self._lock:
            self._items.append(item)
            return len(self._items)

    def claim(self, limit: int) -> tuple[str, list]:
        flush_id = uuid.uuid4().hex
        with self._lock:
            batch = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
            if batch:
                self._processing[flush_id] = batch
        return flush_id, batch

    def ack(self, flush_id: str) -> None:
        with self._lock:
            self._processing.pop(flush_id, None)

    def nack(self, flush_id: str) -> None:
        with self._lock:
            # Back to the front: these are the oldest events.
            self._items.extendleft(reversed(self._processing.pop(flush_id, [])))

    def recover_stale(self, older_than_seconds: float) -> int:
        return 0  # a failing flush in this process always nacks; nothing can be orphaned

    def requeue_in_flight(self) -> int:
        """Put the batches a flush holds back in the buffer (the process is exiting and
        that flush's thread may never finish); a batch also written by that flush is not
        written twice: writes are idempotent."""
        with self._lock:
            batches, self._processing = list(self._processing.values()), {}
            for batch in reversed(batches):
                self._items.extendleft(reversed(batch))
            return sum(len(batch) for batch in batches)

    def pending(self) -> int:
        """Events held in this process: buffered or in a flush under way."""
        with self._lock:
            return len(self._items) + sum(len(batch) for batch in self._processing.values())

    def dead_letter(self, items: list) -> None:
        with self._lock:
            self.dead.extend(items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._processing.clear()
            self.dead.clear()

    def __len__(self) -> int:
        return len(self._items)


memory_buffer = MemoryBuffer()


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
            length = sync_redis().rpush(usage_keys().buffer, _encode(event))
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
            length = await write_batcher().rpush(usage_keys().buffer, _encode(event))
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
            _encode(event) if decode else event for event, _reason in result.invalid
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
