"""The cache's shared tier as one backend object, chosen once from the settings.

``cache_tiers()`` is ``RedisCacheTiers`` (``CACHE_TYPE=redis`` with a ``REDIS_URL``) or
``MemoryCacheTiers`` (the embedded default), chosen on first use and again when those
settings change. Both offer the same operations to the rest of the cache: bring a scope's
memory up to date and read an entry (``sync``, ``read``), store one and bound the scope
(``store``), count a lookup, load, reseed, remove and clear a scope, and the scope's
counters. Without Redis, each of them is done in this process's memory (``memory``) or is
nothing; no caller asks which backend it has.

Redis (keys hash-tagged on the scope):
- ``e:<exact key>``: the entry as JSON, with the TTL;
- ``lru`` (zset, score = last use) and ``exp`` (zset, score = expiry): the scope's members;
  store, eviction and expiry run in one Lua script, so the bound holds across processes;
- ``log`` (stream): ``add`` (with the vector), ``del`` and ``clear`` operations. Each process
  remembers the last id it applied per scope and reads what follows at every lookup (in the
  same pipeline as the exact-key GET); a process that finds a gap (the stream was trimmed past
  its position) reloads the scope. So an entry stored by one process is visible to every other
  at its next lookup in that scope.
- ``stats`` (hash): hits, misses, evictions.

The failure policy is here alone (``or_skip``): while Redis is down, and when it or the
database fails under a lookup or a store, the cache is skipped (the request goes upstream,
nothing is stored) and ``synthlang_outage_fallbacks_total{component="cache"}`` counts it.
An answer from one process's memory alone could be one another instance has already
replaced or removed (docs/decisions/0018).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from common import redis as shared_redis
from common.local_state import local_state_register
from common.outages import OUTAGE_FALLBACKS, REDIS_ERRORS, is_outage_error, redis_outage
from proxy import metrics
from proxy.response_cache.background import _in_background
from proxy.response_cache.memory import Entry, ScopeState, _lock

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A stream this long covers many lookups' worth of changes; a process further behind reloads.
_LOG_MAX_LEN = 10_000


def count_evictions(tier: str, count: int) -> None:
    if count:
        metrics.CACHE_EVICTIONS.labels(tier=tier).inc(count)


def _outage_seen(error: BaseException) -> None:
    if isinstance(error, REDIS_ERRORS):
        redis_outage.failed(error)
    OUTAGE_FALLBACKS.labels(component="cache", action="skipped").inc()


class _CacheTiers:
    """What both backends share: the failure policy."""

    name = ""

    def skipped_now(self) -> bool:
        """Whether the cache is skipped before it is even tried (a noticed outage)."""
        return False

    async def or_skip(self, operation: Callable[[], Awaitable[T]], skipped: T) -> T:
        """``operation()``, or ``skipped`` when Redis or the database is away; counted."""
        if self.skipped_now():
            OUTAGE_FALLBACKS.labels(component="cache", action="skipped").inc()
            return skipped
        try:
            return await operation()
        except Exception as error:
            if not is_outage_error(error):
                raise  # a bug, not an outage
            _outage_seen(error)
            return skipped


class MemoryCacheTiers(_CacheTiers):
    """The embedded default: this process's memory is the only fast tier (one process, so
    nothing to share); the database stays the durable one."""

    name = "memory"

    async def sync(self, state: ScopeState, scope: str, key: str) -> tuple[bytes | None, bool]:
        return None, False

    async def read(self, scope: str, key: str) -> Entry | None:
        return None

    async def store(self, state: ScopeState, entry: Entry) -> list[str]:
        """Expire and evict in memory; returns every key that went."""
        with _lock:
            expired = state.expired(time.time())
            for key in expired:
                state.remove(key)
            evicted = state.least_recently_used_beyond(settings.CACHE_MAX_ITEMS)
            for key in evicted:
                state.remove(key)
            state.evictions += len(evicted)
        count_evictions("memory", len(evicted))
        return evicted + expired

    def restore_later(self, entry: Entry) -> None:
        pass

    def count_lookup(self, state: ScopeState | None, scope: str, key: str, *, hit: bool) -> None:
        if state is None:
            return
        if hit:
            state.hits += 1
        else:
            state.misses += 1

    def load_blocking(self, scope: str) -> tuple[list[Entry], str]:
        return [], "0"

    def reseed_blocking(self, scope: str, entries: list[Entry]) -> str:
        return "0"

    def remove_blocking(self, scope: str, keys: list[str]) -> None:
        pass

    def clear_blocking(self, scope: str) -> None:
        pass

    async def counters(self, state: ScopeState, scope: str) -> tuple[int, int, int, int]:
        """(live entries, hits, misses, evictions) of this process."""
        now = time.time()
        entries = sum(1 for entry in state.entries.values() if entry.live(now))
        return entries, state.hits, state.misses, state.evictions


def _keys(scope: str) -> dict[str, str]:
    base = f"{shared_redis.KEY_PREFIX}cache:{{{scope}}}:"
    return {
        "entry": base + "e:",
        "lru": base + "lru",
        "exp": base + "exp",
        "log": base + "log",
        "stats": base + "stats",
    }


# Store one entry, then expire and evict in the same atomic step so the scope's bound holds
# when several processes store at once. Returns {evicted ids, expired ids}.
_STORE_SCRIPT = """
local prefix, id, payload = ARGV[1], ARGV[2], ARGV[3]
local ttl, now, expires_at = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local max_items, maxlen, log_payload = tonumber(ARGV[7]), ARGV[8], ARGV[9]
redis.call('SET', prefix .. id, payload, 'EX', ttl)
redis.call('ZADD', KEYS[1], now, id)
redis.call('ZADD', KEYS[2], expires_at, id)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'op', 'add', 'id', id, 'data', log_payload)
local function drop(member)
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
  redis.call('DEL', prefix .. member)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'op', 'del', 'id', member)
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, member in ipairs(expired) do drop(member) end
local evicted = {}
local excess = redis.call('ZCARD', KEYS[1]) - max_items
if excess > 0 then
  local popped = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
  for _, member in ipairs(popped) do
    drop(member)
    table.insert(evicted, member)
  end
  redis.call('HINCRBY', KEYS[4], 'evictions', #evicted)
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl * 2) end
return {evicted, expired}
"""


def _log_payload(entry: Entry) -> str:
    # Everything another process needs to index the entry; the response stays in e:<key>.
    slim = Entry(**{**entry.__dict__, "response": None})
    return slim.to_json()


def _store_args(keys: dict[str, str], entry: Entry, now: float) -> list:
    return [
        keys["entry"],
        entry.key,
        entry.to_json(),
        max(int(entry.expires_at - now), 1),
        repr(now),
        repr(entry.expires_at),
        settings.CACHE_MAX_ITEMS,
        _LOG_MAX_LEN,
        _log_payload(entry),
    ]


def _apply_log(state: ScopeState, records: list) -> None:
    for record_id, fields in records:
        op = fields.get(b"op")
        if op == b"add":
            state.put(Entry.from_json(fields[b"data"]))
        elif op == b"del":
            state.remove(fields[b"id"].decode())
        elif op == b"clear":
            state.entries.clear()
            state.indexes.clear()
        state.log_id = record_id.decode()


def _stream_id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


class RedisCacheTiers(_CacheTiers):
    """Redis shares the scopes between processes; each process's memory mirrors them."""

    name = "redis"

    def skipped_now(self) -> bool:
        return redis_outage.down

    async def sync(self, state: ScopeState, scope: str, key: str) -> tuple[bytes | None, bool]:
        """Apply the scope's log to ``state``; the exact key's entry, and whether the log
        was trimmed past this process's position (the scope must then be reloaded)."""
        keys = _keys(scope)
        pipe = shared_redis.async_redis().pipeline(transaction=False)
        pipe.get(keys["entry"] + key)
        pipe.xrange(keys["log"], min=f"({state.log_id}", count=1000)
        pipe.xrange(keys["log"], count=1)
        raw, records, first = await pipe.execute()
        if first and state.log_id != "0" and _stream_id(first[0][0]) > _stream_id(state.log_id):
            return raw, True
        with _lock:
            _apply_log(state, records)
        return raw, False

    async def read(self, scope: str, key: str) -> Entry | None:
        raw = await shared_redis.async_redis().get(_keys(scope)["entry"] + key)
        return Entry.from_json(raw) if raw else None

    async def store(self, state: ScopeState, entry: Entry) -> list[str]:
        """Store, expire and evict in one script; returns the keys evicted to make room."""
        evicted = await self._store_script(entry)
        count_evictions("redis", len(evicted))
        with _lock:
            for key in evicted:
                state.remove(key)
        return evicted

    @staticmethod
    async def _store_script(entry: Entry) -> list[str]:
        keys = _keys(entry.scope)
        evicted, _expired = await shared_redis.async_redis().eval(
            _STORE_SCRIPT,
            4,
            keys["lru"],
            keys["exp"],
            keys["log"],
            keys["stats"],
            *_store_args(keys, entry, time.time()),
        )
        return [member.decode() for member in evicted]

    def restore_later(self, entry: Entry) -> None:
        """Put an entry found in the database back in Redis, after the answer."""

        async def restore() -> None:
            await self._store_script(entry)

        self._later(restore, "restoring to Redis")

    def count_lookup(self, state: ScopeState | None, scope: str, key: str, *, hit: bool) -> None:
        async def count() -> None:
            keys = _keys(scope)
            pipe = shared_redis.async_redis().pipeline(transaction=False)
            if hit:
                pipe.zadd(keys["lru"], {key: time.time()}, xx=True)
            pipe.hincrby(keys["stats"], "hits" if hit else "misses", 1)
            await pipe.execute()

        self._later(count, "counting a cache lookup in Redis")

    def _later(self, operation: Callable[[], Awaitable[None]], what: str) -> None:
        async def run() -> None:
            try:
                await operation()
            except Exception as error:
                if is_outage_error(error):
                    _outage_seen(error)  # the outage's own report says so, once
                else:
                    logger.exception("%s failed", what)

        _in_background(run())

    def load_blocking(self, scope: str) -> tuple[list[Entry], str]:
        """The scope's live members, least recently used first, and the log's last id."""
        keys = _keys(scope)
        client = shared_redis.sync_redis()
        last = client.xrevrange(keys["log"], count=1)
        log_id = last[0][0].decode() if last else "0"
        members = client.zrange(keys["lru"], 0, -1)
        if not members:
            return [], log_id
        raws = client.mget([keys["entry"] + member.decode() for member in members])
        return [Entry.from_json(raw) for raw in raws if raw], log_id

    def reseed_blocking(self, scope: str, entries: list[Entry]) -> str:
        """Put the database's entries of a scope Redis lost back; the log's last id."""
        keys = _keys(scope)
        client = shared_redis.sync_redis()
        script = client.register_script(_STORE_SCRIPT)
        now = time.time()
        for entry in entries:
            script(
                keys=[keys["lru"], keys["exp"], keys["log"], keys["stats"]],
                args=_store_args(keys, entry, now),
            )
        last = client.xrevrange(keys["log"], count=1)
        return last[0][0].decode() if last else "0"

    def remove_blocking(self, scope: str, keys_: list[str]) -> None:
        keys = _keys(scope)
        pipe = shared_redis.sync_redis().pipeline()
        for key in keys_:
            pipe.zrem(keys["lru"], key)
            pipe.zrem(keys["exp"], key)
            pipe.delete(keys["entry"] + key)
            pipe.xadd(keys["log"], {"op": "del", "id": key}, maxlen=_LOG_MAX_LEN)
        pipe.execute()

    def clear_blocking(self, scope: str) -> None:
        keys = _keys(scope)
        client = shared_redis.sync_redis()
        members = client.zrange(keys["lru"], 0, -1)
        pipe = client.pipeline()
        for member in members:
            pipe.delete(keys["entry"] + member.decode())
        pipe.delete(keys["lru"], keys["exp"], keys["stats"])
        # Other processes drop their copy when they read this from the log.
        pipe.xadd(keys["log"], {"op": "clear", "id": ""}, maxlen=_LOG_MAX_LEN)
        pipe.execute()

    async def counters(self, state: ScopeState, scope: str) -> tuple[int, int, int, int]:
        """(live entries, hits, misses, evictions) across every process."""
        keys = _keys(scope)
        pipe = shared_redis.async_redis().pipeline(transaction=False)
        pipe.zcount(keys["exp"], time.time(), "+inf")
        pipe.hgetall(keys["stats"])
        entries, counters = await pipe.execute()
        counters = {name.decode(): int(value) for name, value in counters.items()}
        return (
            int(entries),
            counters.get("hits", 0),
            counters.get("misses", 0),
            counters.get("evictions", 0),
        )


CacheTiers = MemoryCacheTiers | RedisCacheTiers
_chosen: CacheTiers | None = None


def cache_tiers() -> CacheTiers:
    """The backend, chosen on first use from the settings (again after they change)."""
    global _chosen
    if _chosen is None:
        _chosen = RedisCacheTiers() if shared_redis.redis_enabled() else MemoryCacheTiers()
    return _chosen


def _tiers_forget() -> None:
    global _chosen
    _chosen = None


local_state_register("cache:tiers", _tiers_forget, redis_twin=False)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **_kwargs) -> None:
    if setting in ("CACHE_TYPE", "REDIS_URL"):
        _tiers_forget()
