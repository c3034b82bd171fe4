"""The cache's three storage tiers: process memory, Redis (shared), the database (durable).

Memory: each process holds, per scope, an LRU of entries (metadata, and the response once it
has been read) and one `SemanticIndex` per context fingerprint.

Redis (``CACHE_TYPE=redis``), per scope (keys hash-tagged on the scope):
- ``e:<exact key>``: the entry as JSON, with the TTL;
- ``lru`` (zset, score = last use) and ``exp`` (zset, score = expiry): the scope's members;
  store, eviction and expiry run in one Lua script, so the bound holds across processes;
- ``log`` (stream): ``add`` (with the vector), ``del`` and ``clear`` operations. Each process
  remembers the last id it applied per scope and reads what follows at every lookup (in the
  same pipeline as the exact-key GET); a process that finds a gap (the stream was trimmed past
  its position) reloads the scope. So an entry stored by one process is visible to every other
  at its next lookup in that scope.
- ``stats`` (hash): hits, misses, evictions.

Database (`CacheEntry`): written in the background after Redis, so a Redis flush loses
nothing; the exact tier falls back to it and scopes are rebuilt from it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from django.conf import settings
from django.db.models import F
from threadpoolctl import threadpool_limits

from common import redis as shared_redis
from common.db import run_in_db_thread
from proxy import metrics
from proxy.models import CacheEntry
from proxy.semantic_cache.embedding import StaticEmbedder, UpstreamEmbedder
from proxy.semantic_cache.index import SemanticIndex
from proxy.semantic_cache.minilm import MiniLMEmbedder

logger = logging.getLogger(__name__)

# A stream this long covers many lookups' worth of changes; a process further behind reloads.
_LOG_MAX_LEN = 10_000
# Warm-up loads this many of the most recently used scopes.
WARM_SCOPES = 50
# Embedding is CPU work of up to a few ms: two threads keep the event loop free without
# letting a burst of lookups take every core of the machine.
_embed_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cache-embed")
# Those two threads are the cache's parallelism: BLAS threads under each index search only
# contend with them and with onnxruntime (measured on 2 shared CPUs: a MiniLM embedding and a
# 10,000-entry search took 21.5 ms together with two OpenBLAS threads, 8.8 ms with one).
threadpool_limits(limits=1, user_api="blas")


Embedder = MiniLMEmbedder | StaticEmbedder | UpstreamEmbedder


def _configured_embedder() -> Embedder:
    """all-MiniLM-L6-v2 offline by default; the static model or the upstream's embeddings
    API when configured (docs/decisions/0004)."""
    if settings.CACHE_EMBEDDER == "upstream":
        return UpstreamEmbedder(
            base_url=settings.OPENAI_BASE_URL,
            api_key=settings.OPENAI_API_KEY,
            model=settings.CACHE_EMBEDDING_MODEL,
            dimensions=settings.CACHE_EMBEDDING_DIMENSIONS,
        )
    if settings.CACHE_EMBEDDER in {"static", "local"}:
        return StaticEmbedder()
    return MiniLMEmbedder()


_embedder = _configured_embedder()
# Synonym matching uses the static model's word vectors whatever embeds questions: they are
# free, offline, the same in every process, and (unlike MiniLM's) they keep antonyms apart.
_word_model = _embedder if isinstance(_embedder, StaticEmbedder) else StaticEmbedder()
_background: set[asyncio.Task] = set()


def _in_background(coroutine) -> None:
    task = asyncio.ensure_future(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


def embedder() -> Embedder:
    return _embedder


def word_vectors_or_none():
    """The word-vector function for synonym matching, or None when the local model is
    unusable (verification then matches words only as written, typos and acronyms)."""
    try:
        _word_model.warm_up()
    except Exception:
        return None
    return _word_model.word_vectors


def embeds_locally() -> bool:
    """True for the offline models (CPU here, free); False for the upstream's paid API."""
    return isinstance(_embedder, MiniLMEmbedder | StaticEmbedder)


# --- Entries ------------------------------------------------------------------------------


@dataclass
class Entry:
    key: str  # the exact key: one entry per (scope, exact key)
    scope: str
    organization_id: int | None
    fingerprint: str
    question: str
    model: str
    expires_at: float  # wall clock, shared by every process
    response: dict | None = None  # None: known from the log, not read yet
    vector: np.ndarray | None = None

    def live(self, now: float) -> bool:
        return self.expires_at > now

    def to_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "scope": self.scope,
                "org": self.organization_id,
                "fp": self.fingerprint,
                "q": self.question,
                "model": self.model,
                "exp": self.expires_at,
                "response": self.response,
                "v": _pack_vector(self.vector),
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Entry:
        data = json.loads(raw)
        return cls(
            key=data["key"],
            scope=data["scope"],
            organization_id=data.get("org"),
            fingerprint=data["fp"],
            question=data["q"],
            model=data.get("model", ""),
            expires_at=float(data["exp"]),
            response=data.get("response"),
            vector=_unpack_vector(data.get("v")),
        )

    @classmethod
    def from_row(cls, row: CacheEntry) -> Entry:
        vector = None
        if row.embedding:
            vector = np.frombuffer(bytes(row.embedding), dtype=np.float32).copy()
        return cls(
            key=row.exact_key,
            scope=row.scope,
            organization_id=row.organization_id,
            fingerprint=row.context_fingerprint,
            question=row.question,
            model=row.model,
            expires_at=row.expires_at.timestamp(),
            response=row.response,
            vector=vector,
        )


def _pack_vector(vector: np.ndarray | None) -> str | None:
    if vector is None:
        return None
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode()


def _unpack_vector(text: str | None) -> np.ndarray | None:
    if not text:
        return None
    return np.frombuffer(base64.b64decode(text), dtype=np.float32).copy()


# --- Process memory -----------------------------------------------------------------------


@dataclass
class ScopeState:
    entries: OrderedDict[str, Entry] = field(default_factory=OrderedDict)  # first = LRU
    indexes: dict[str, SemanticIndex] = field(default_factory=dict)
    log_id: str = "0"
    hits: int = 0
    misses: int = 0
    evictions: int = 0

    def index_for(self, fingerprint: str) -> SemanticIndex:
        index = self.indexes.get(fingerprint)
        if index is None:
            # The scope's own LRU bounds the entries; the index only mirrors them. Its clock is
            # the wall clock so expiry times read from Redis mean the same in every process.
            index = SemanticIndex(
                dim=_embedder.dim, max_items=settings.CACHE_MAX_ITEMS, clock=time.time
            )
            self.indexes[fingerprint] = index
        return index

    def put(self, entry: Entry) -> None:
        old = self.entries.pop(entry.key, None)
        if entry.response is None and old is not None and old.fingerprint == entry.fingerprint:
            entry.response = old.response
        if old is not None and old.fingerprint != entry.fingerprint:
            self.indexes.get(old.fingerprint, _EMPTY).remove(old.key)
        self.entries[entry.key] = entry
        # A vector of another size was made by another embedder (the setting changed):
        # the entry still serves exact repeats, just not by meaning.
        if entry.vector is not None and entry.vector.shape == (_embedder.dim,):
            self.index_for(entry.fingerprint).add(
                entry_id=entry.key,
                vector=entry.vector,
                text=entry.question,
                expires_at=entry.expires_at,
            )
            entry.vector = None  # the index keeps its own copy; do not hold two

    def remove(self, key: str) -> Entry | None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            index = self.indexes.get(entry.fingerprint)
            if index is not None:
                index.remove(key)
                if not len(index):
                    del self.indexes[entry.fingerprint]
        return entry

    def touch(self, key: str) -> None:
        if key in self.entries:
            self.entries.move_to_end(key)
            entry = self.entries[key]
            index = self.indexes.get(entry.fingerprint)
            if index is not None:
                index.touch(key)

    def least_recently_used_beyond(self, limit: int) -> list[str]:
        excess = len(self.entries) - limit
        return list(self.entries)[: max(excess, 0)]

    def expired(self, now: float) -> list[str]:
        return [key for key, entry in self.entries.items() if not entry.live(now)]

    def memory_bytes(self) -> int:
        vectors = sum(index.memory_bytes() for index in self.indexes.values())
        texts = sum(
            len(entry.question) + (len(json.dumps(entry.response)) if entry.response else 0)
            for entry in self.entries.values()
        )
        return vectors + texts


class _NoIndex:
    def remove(self, key: str) -> bool:
        return False


_EMPTY = _NoIndex()

# Touched from the event loop, the warm-up thread and pool threads (admin, clear): one lock.
_lock = threading.RLock()
_scopes: dict[str, ScopeState] = {}
_loading: dict[str, asyncio.Future] = {}


def _scope(scope: str) -> ScopeState | None:
    return _scopes.get(scope)


def memory_forget() -> None:
    """Drop this process's memory tier (tests; a new process starts like this)."""
    with _lock:
        _scopes.clear()
        _loading.clear()


# --- Redis ---------------------------------------------------------------------------------


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


async def redis_store(entry: Entry) -> list[str]:
    keys = _keys(entry.scope)
    client = shared_redis.async_redis()
    now = time.time()
    ttl = max(int(entry.expires_at - now), 1)
    evicted, _expired = await client.eval(
        _STORE_SCRIPT,
        4,
        keys["lru"],
        keys["exp"],
        keys["log"],
        keys["stats"],
        keys["entry"],
        entry.key,
        entry.to_json(),
        ttl,
        repr(now),
        repr(entry.expires_at),
        settings.CACHE_MAX_ITEMS,
        _LOG_MAX_LEN,
        _log_payload(entry),
    )
    return [member.decode() for member in evicted]


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


async def redis_sync(scope: str, exact_key: str) -> bytes | None:
    """Bring the scope's memory up to date with the log; returns the exact key's entry."""
    keys = _keys(scope)
    state = _scopes[scope]
    pipe = shared_redis.async_redis().pipeline(transaction=False)
    pipe.get(keys["entry"] + exact_key)
    pipe.xrange(keys["log"], min=f"({state.log_id}", count=1000)
    pipe.xrange(keys["log"], count=1)
    raw, records, first = await pipe.execute()
    if first and state.log_id != "0" and _stream_id(first[0][0]) > _stream_id(state.log_id):
        # Trimmed past our position: operations were lost to us, so reload the scope.
        await run_in_db_thread(load_scope_blocking, scope)
        return raw
    with _lock:
        _apply_log(state, records)
    return raw


def _stream_id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


async def redis_read(scope: str, key: str) -> Entry | None:
    raw = await shared_redis.async_redis().get(_keys(scope)["entry"] + key)
    return Entry.from_json(raw) if raw else None


def redis_touch_later(scope: str, key: str, *, hit: bool) -> None:
    async def run():
        keys = _keys(scope)
        pipe = shared_redis.async_redis().pipeline(transaction=False)
        if hit:
            pipe.zadd(keys["lru"], {key: time.time()}, xx=True)
        pipe.hincrby(keys["stats"], "hits" if hit else "misses", 1)
        await pipe.execute()

    _in_background(_swallow(run(), "counting a cache lookup in Redis"))


async def _swallow(coroutine, what: str) -> None:
    try:
        await coroutine
    except Exception:
        logger.exception("%s failed", what)


# --- Database ------------------------------------------------------------------------------


def _as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def db_save_blocking(entry: Entry, vector: np.ndarray | None, evicted: list[str]) -> None:
    usage = (entry.response or {}).get("usage") or {}
    CacheEntry.objects.update_or_create(
        scope=entry.scope,
        exact_key=entry.key,
        defaults={
            "organization_id": entry.organization_id,
            "context_fingerprint": entry.fingerprint,
            "question": entry.question,
            "embedding": None if vector is None else vector.astype(np.float32).tobytes(),
            "model": entry.model,
            "response": entry.response,
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
            "hits": 0,
            "last_hit_at": None,
            "expires_at": _as_datetime(entry.expires_at),
        },
    )
    if evicted:
        CacheEntry.objects.filter(scope=entry.scope, exact_key__in=evicted).delete()


def db_read_blocking(scope: str, key: str) -> Entry | None:
    row = CacheEntry.objects.filter(
        scope=scope, exact_key=key, expires_at__gt=datetime.now(tz=UTC)
    ).first()
    return Entry.from_row(row) if row else None


def db_scope_entries_blocking(scope: str) -> list[Entry]:
    rows = CacheEntry.objects.filter(scope=scope, expires_at__gt=datetime.now(tz=UTC)).order_by(
        F("last_hit_at").desc(nulls_last=True), "-created_at"
    )[: settings.CACHE_MAX_ITEMS]
    # Oldest first, so the most recently used end up last in the LRU.
    return [Entry.from_row(row) for row in reversed(list(rows))]


# Hits are counted in the database for the admin and for warming; buffered so a burst of hits
# costs one UPDATE per entry per second, not one per hit.
_pending_hits: dict[tuple[str, str], int] = {}
_hits_flush: list[asyncio.Task] = []


def db_count_hit_later(scope: str, key: str) -> None:
    with _lock:
        _pending_hits[(scope, key)] = _pending_hits.get((scope, key), 0) + 1
        if _hits_flush and not _hits_flush[0].done():
            return
    _hits_flush[:] = [asyncio.ensure_future(_flush_hits_soon())]


async def _flush_hits_soon() -> None:
    await asyncio.sleep(1.0)
    with _lock:
        pending = dict(_pending_hits)
        _pending_hits.clear()
    await _swallow(run_in_db_thread(_flush_hits_blocking, pending), "counting cache hits")


def _flush_hits_blocking(pending: dict[tuple[str, str], int]) -> None:
    now = datetime.now(tz=UTC)
    for (scope, key), count in pending.items():
        CacheEntry.objects.filter(scope=scope, exact_key=key).update(
            hits=F("hits") + count, last_hit_at=now
        )


# --- Loading a scope (first use, warm-up, after a gap in the log) ---------------------------


def load_scope_blocking(scope: str) -> ScopeState:
    """Fill the scope's memory from Redis, or from the database when Redis has nothing."""
    entries: list[Entry] = []
    log_id = "0"
    if shared_redis.redis_enabled():
        keys = _keys(scope)
        client = shared_redis.sync_redis()
        last = client.xrevrange(keys["log"], count=1)
        log_id = last[0][0].decode() if last else "0"
        members = client.zrange(keys["lru"], 0, -1)  # least recently used first
        if members:
            raws = client.mget([keys["entry"] + member.decode() for member in members])
            entries = [Entry.from_json(raw) for raw in raws if raw]
    if not entries:
        entries = db_scope_entries_blocking(scope)
        if entries and shared_redis.redis_enabled():
            _reseed_redis_blocking(scope, entries)
            last = shared_redis.sync_redis().xrevrange(_keys(scope)["log"], count=1)
            log_id = last[0][0].decode() if last else "0"
    state = ScopeState(log_id=log_id)
    now = time.time()
    for entry in entries:
        if entry.live(now):
            state.put(entry)
    with _lock:
        previous = _scopes.get(scope)
        if previous is not None:
            state.hits, state.misses, state.evictions = (
                previous.hits,
                previous.misses,
                previous.evictions,
            )
        _scopes[scope] = state
    return state


def _reseed_redis_blocking(scope: str, entries: list[Entry]) -> None:
    keys = _keys(scope)
    client = shared_redis.sync_redis()
    script = client.register_script(_STORE_SCRIPT)
    now = time.time()
    for entry in entries:
        vector_entry = Entry(**{**entry.__dict__})
        script(
            keys=[keys["lru"], keys["exp"], keys["log"], keys["stats"]],
            args=[
                keys["entry"],
                entry.key,
                vector_entry.to_json(),
                max(int(entry.expires_at - now), 1),
                repr(now),
                repr(entry.expires_at),
                settings.CACHE_MAX_ITEMS,
                _LOG_MAX_LEN,
                _log_payload(vector_entry),
            ],
        )


async def ensure_scope(scope: str) -> ScopeState:
    state = _scopes.get(scope)
    if state is not None:
        return state
    pending = _loading.get(scope)
    if pending is not None and pending.get_loop() is asyncio.get_running_loop():
        return await asyncio.shield(pending)
    future = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    _loading[scope] = future
    try:
        state = await run_in_db_thread(load_scope_blocking, scope)
        future.set_result(state)
        return state
    except BaseException as error:
        future.set_exception(error)
        raise
    finally:
        if _loading.get(scope) is future:
            del _loading[scope]


# --- Removal: eviction, expiry, clearing ---------------------------------------------------


def count_evictions(tier: str, count: int) -> None:
    if count:
        metrics.CACHE_EVICTIONS.labels(tier=tier).inc(count)


def remove_entries_blocking(*, pairs: list[tuple[str, str]]) -> int:
    """Remove (scope, exact key) entries from every tier. Returns how many rows went."""
    by_scope: dict[str, list[str]] = {}
    for scope, key in pairs:
        by_scope.setdefault(scope, []).append(key)
    removed = 0
    for scope, keys_ in by_scope.items():
        with _lock:
            state = _scopes.get(scope)
            for key in keys_:
                if state is not None:
                    state.remove(key)
        if shared_redis.redis_enabled():
            keys = _keys(scope)
            pipe = shared_redis.sync_redis().pipeline()
            for key in keys_:
                pipe.zrem(keys["lru"], key)
                pipe.zrem(keys["exp"], key)
                pipe.delete(keys["entry"] + key)
                pipe.xadd(keys["log"], {"op": "del", "id": key}, maxlen=_LOG_MAX_LEN)
            pipe.execute()
        removed += CacheEntry.objects.filter(scope=scope, exact_key__in=keys_).delete()[0]
    return removed


def clear_scopes_blocking(*, scopes: list[str]) -> None:
    for scope in scopes:
        with _lock:
            state = _scopes.get(scope)
            if state is not None:
                state.entries.clear()
                state.indexes.clear()
        if shared_redis.redis_enabled():
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
