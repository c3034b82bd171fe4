"""The cache's tiers put together: process memory, the shared tier, the database (durable).

Process memory (``memory``) holds, per scope, the entries and their semantic indexes; the
shared tier (``backends.cache_tiers()``: Redis, or nothing beyond this process's memory in the
embedded mode) keeps every process's memory of a scope the same; the database
(`CacheEntry`) is written in the background after the shared tier, so a Redis flush loses
nothing: the exact tier falls back to it and scopes are rebuilt from it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import numpy as np
from django.conf import settings
from django.db.models import F

from common.db import run_in_db_thread
from proxy.models import CacheEntry
from proxy.response_cache.backends import cache_tiers, count_evictions
from proxy.response_cache.background import _background, _in_background, _swallow
from proxy.response_cache.embedder import (
    Embedder,
    _embed_executor,
    embedder,
    embeds_locally,
    word_vectors_or_none,
)
from proxy.response_cache.memory import (
    Entry,
    ScopeState,
    _loading,
    _lock,
    _scope,
    _scopes,
    memory_forget,
)

# Warm-up loads this many of the most recently used scopes.
WARM_SCOPES = 50

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
    """Fill the scope's memory from the shared tier, or from the database when it has
    nothing (and put the database's entries back in the shared tier)."""
    tiers = cache_tiers()
    entries, log_id = tiers.load_blocking(scope)
    if not entries:
        entries = db_scope_entries_blocking(scope)
        if entries:
            log_id = tiers.reseed_blocking(scope, entries)
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


async def scope_sync(state: ScopeState, scope: str, key: str) -> tuple[bytes | None, ScopeState]:
    """Bring the scope's memory up to date with the shared tier; the exact key's entry as
    the shared tier holds it, and the scope's state (a new one after a reload)."""
    raw, gap = await cache_tiers().sync(_scopes.get(scope) or state, scope, key)
    if gap:
        # Trimmed past our position: operations were lost to us, so reload the scope.
        await run_in_db_thread(load_scope_blocking, scope)
    return raw, _scopes.get(scope) or state


# --- Removal: eviction, expiry, clearing ---------------------------------------------------


def remove_entries_blocking(*, pairs: list[tuple[str, str]]) -> int:
    """Remove (scope, exact key) entries from every tier. Returns how many rows went."""
    by_scope: dict[str, list[str]] = {}
    for scope, key in pairs:
        by_scope.setdefault(scope, []).append(key)
    removed = 0
    tiers = cache_tiers()
    for scope, keys in by_scope.items():
        with _lock:
            state = _scopes.get(scope)
            for key in keys:
                if state is not None:
                    state.remove(key)
        tiers.remove_blocking(scope, keys)
        removed += CacheEntry.objects.filter(scope=scope, exact_key__in=keys).delete()[0]
    return removed


def clear_scopes_blocking(*, scopes: list[str]) -> None:
    tiers = cache_tiers()
    for scope in scopes:
        with _lock:
            state = _scopes.get(scope)
            if state is not None:
                state.entries.clear()
                state.indexes.clear()
        tiers.clear_blocking(scope)


__all__ = [
    "WARM_SCOPES",
    "Embedder",
    "Entry",
    "ScopeState",
    "_background",
    "_embed_executor",
    "_in_background",
    "_lock",
    "_scope",
    "_swallow",
    "clear_scopes_blocking",
    "count_evictions",
    "db_count_hit_later",
    "db_read_blocking",
    "db_save_blocking",
    "db_scope_entries_blocking",
    "embedder",
    "embeds_locally",
    "ensure_scope",
    "load_scope_blocking",
    "memory_forget",
    "remove_entries_blocking",
    "scope_sync",
    "word_vectors_or_none",
]
