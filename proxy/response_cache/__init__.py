"""The response cache as the gateway sees it: look up before the upstream, store after.

This package is the seam between the request pipeline and the cache's tiers; the gateway
calls only ``cache_lookup`` and ``cache_store``. Tiers: exact (hash of the normalised request
within its context fingerprint) and semantic (embedding of the final user turn, searched within
the same scope and fingerprint, then verified). Storage: memory, then Redis, then the database
(``store``). Operations for the API, the admin and Celery live in ``services``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from accounts.selectors import Principal
from common.db import run_in_db_thread
from proxy import metrics
from proxy.response_cache import store, tier, verifier
from proxy.response_cache.backends import cache_tiers
from proxy.response_cache.context import (
    ANSWER_SHAPING_FIELDS,
    CacheContext,
    cache_context,
    cache_scope,
    final_user_text,
    prompt_size,
    response_size,
    semantic_allowed_for,
)
from proxy.response_cache.scope import scope_for
from proxy.semantic_cache.embedding import english_lexicon
from proxy.semantic_cache.normalize import normalize_for_embedding
from proxy.semantic_cache.verify import VerificationPolicy, review_candidates

logger = logging.getLogger(__name__)

# Index candidates start here; verification decides (docs/decisions/0004).
CANDIDATE_FLOOR = 0.5
CANDIDATES = 5


@dataclass(frozen=True)
class CacheLookup:
    status: str  # "hit" | "miss" | "off"
    tier: str = ""  # "exact" | "semantic" on a hit
    response: dict | None = None
    context: CacheContext | None = None
    details: dict = field(default_factory=dict)
    # The question's embedding when the lookup started one (a task, possibly still running):
    # a miss stores it with the answer instead of computing it a second time.
    embedding: asyncio.Future | None = None


OFF = CacheLookup(status="off")


def caching_enabled(principal: Principal, control: str) -> bool:
    return settings.ENABLE_CACHE and principal.cache_enabled and control != "off"


def verification_policy() -> VerificationPolicy:
    """The checks with the configured embedder's bar (docs/decisions/0004).

    CACHE_SIMILARITY_THRESHOLD (default: the embedder's own bar) is the cosine a reworded
    question needs once every check passed. Words on one side only are always rejected
    (``strict_scope``): leaving them to MiniLM's cosine gained recall but lost precision on
    unseen pairs.
    """
    threshold = settings.CACHE_SIMILARITY_THRESHOLD or store.embedder().paraphrase_threshold
    return VerificationPolicy(paraphrase_threshold=threshold)


# --- Lookup -----------------------------------------------------------------------------


async def cache_lookup(*, principal: Principal, body: dict, control: str) -> CacheLookup:
    """``control``: "" (normal), "off" (bypass entirely) or "refresh" (re-ask, replace).

    During a Redis outage, or when the database fails under it, the cache is skipped
    (``off``), by the backend's failure policy (``backends``): the request goes upstream
    as if caching were off.
    """
    if not caching_enabled(principal, control) or body.get("n") not in (None, 1):
        return OFF
    return await cache_tiers().or_skip(
        lambda: _cache_lookup(principal=principal, body=body, control=control), OFF
    )


async def _cache_lookup(*, principal: Principal, body: dict, control: str) -> CacheLookup:
    messages = body.get("messages") or []
    if prompt_size(messages) > settings.CACHE_MAX_ENTRY_CHARS:
        # Neither looked up nor stored: hashing and keeping a document this large costs
        # more than the repeat it might save (and a Redis value that size hurts everyone).
        metrics.CACHE_NOT_STORED.labels(reason="prompt_too_large").inc()
        return OFF
    scope, shared = await scope_for(principal, body)
    context = cache_context(principal, body, scope=scope, shared=shared)
    if context is None:
        return OFF
    if control == "refresh":
        return CacheLookup(status="miss", context=context, details={"refresh": True})
    found, embedding = await _find(context)
    hit = found is not None
    _count(context.scope, hit=hit, key=found[1] if hit else "")
    if not hit:
        return CacheLookup(status="miss", context=context, embedding=embedding)
    tier, key, response, details = found
    return CacheLookup(
        status="hit",
        tier=tier,
        response=response,
        context=context,
        details={"entry": key, **details},
    )


async def _find(
    context: CacheContext,
) -> tuple[tuple[str, str, dict, dict] | None, asyncio.Future | None]:
    """The hit (tier, entry key, response, details) or None, and on a miss the task computing
    the question's embedding, if one was started."""
    scope, key = context.scope, context.exact_key
    state = await store.ensure_scope(scope)
    embedding = None
    known = state.entries.get(key)
    if (
        context.semantic_allowed
        and store.embeds_locally()
        and (known is None or not known.live(time.time()))
    ):
        # Unless this process already holds the exact answer, the embedding will be needed
        # (to search, or to store the answer of a miss): start it now, so that it runs on
        # its thread while the event loop waits for Redis. Only the local model: the
        # upstream's embeddings API costs money, so it is only asked when needed.
        embedding = asyncio.ensure_future(_embed_question(context.question))
        embedding.add_done_callback(_observe)
    try:
        found = await _find_with(context, state, embedding)
    except BaseException:
        if embedding is not None:
            embedding.cancel()
        raise
    if found is not None:
        if embedding is not None:
            embedding.cancel()
        return found, None
    return None, embedding


def _observe(task: asyncio.Future) -> None:
    """Mark a failed embedding as seen: whoever needs it gets the error when awaiting it,
    and one nobody needs any more (a hit) must not log "exception never retrieved"."""
    if not task.cancelled():
        task.exception()


async def _find_with(
    context: CacheContext, state: store.ScopeState, embedding: asyncio.Future | None
) -> tuple[str, str, dict, dict] | None:
    scope, key = context.scope, context.exact_key
    raw, state = await store.scope_sync(state, scope, key)
    now = time.time()
    entry = state.entries.get(key)
    if entry is not None and entry.live(now):
        response = entry.response
        if response is None and raw:
            response = store.Entry.from_json(raw).response
            entry.response = response
        if response is not None:
            return "exact", key, response, {}
    elif raw:
        loaded = store.Entry.from_json(raw)
        if loaded.live(now):
            with store._lock:
                state.put(loaded)
            return "exact", key, loaded.response, {}

    if context.semantic_allowed and state.indexes.get(context.context_fingerprint):
        match = await _semantic_match_safely(state, context, embedding)
        if match is not None:
            response = await _response_of(state, scope, match.entry_id)
            if response is not None:
                return "semantic", match.entry_id, response, {"score": round(match.score, 4)}

    row = await run_in_db_thread(store.db_read_blocking, scope, key)
    if row is not None:
        restored = store.Entry(**row.__dict__)
        with store._lock:
            state.put(restored)
        cache_tiers().restore_later(row)
        return "exact", key, row.response, {"from": "database"}
    return None


async def _semantic_match_safely(
    state: store.ScopeState, context: CacheContext, embedding: asyncio.Future | None
):
    """The verified match, or None; a failing embedder only costs the semantic tier.

    The failure is reported once (``tier``), never logged per request.
    """
    try:
        vector = await (embedding if embedding is not None else _embed_question(context.question))
    except Exception as error:
        tier.semantic_failed(error)
        return None
    tier.semantic_succeeded()
    return await _semantic_match(state, context, vector)


async def _semantic_match(state: store.ScopeState, context: CacheContext, vector: np.ndarray):
    index = state.indexes.get(context.context_fingerprint)
    if index is None:
        return None

    def search():
        # Search and verification are CPU work, like the embedding: off the event loop.
        candidates = index.search(vector=vector, k=CANDIDATES, threshold=CANDIDATE_FLOOR)
        return review_candidates(
            candidates=candidates,
            incoming=context.question,
            policy=verification_policy(),
            lexicon=english_lexicon(),
            word_vectors=store.word_vectors_or_none(),
        )

    loop = asyncio.get_running_loop()
    review = await loop.run_in_executor(store._embed_executor, search)
    if review.match is not None or not verifier.verifier_enabled():
        return review.match
    for candidate in review.borderline[: settings.CACHE_VERIFIER_MAX_CALLS]:
        if await verifier.verifier_confirms(
            organization_id=context.requester_id, stored=candidate.text, incoming=context.question
        ):
            return candidate
    return None


async def _response_of(state: store.ScopeState, scope: str, key: str) -> dict | None:
    entry = state.entries.get(key)
    if entry is not None and entry.response is not None:
        return entry.response
    loaded = await cache_tiers().read(scope, key)
    if loaded is None:
        loaded = await run_in_db_thread(store.db_read_blocking, scope, key)
    if loaded is None or not loaded.live(time.time()):
        return None
    if entry is not None:
        entry.response = loaded.response
    return loaded.response


def _count(scope: str, *, hit: bool, key: str) -> None:
    state = store._scope(scope)
    if hit and state is not None:
        with store._lock:
            state.touch(key)
    cache_tiers().count_lookup(state, scope, key, hit=hit)
    if hit:
        store.db_count_hit_later(scope, key)


# --- Store --------------------------------------------------------------------------------


async def cache_store(lookup: CacheLookup, *, response: dict) -> None:
    """Keep a complete, successful answer for the lookup's key (called in the background).

    Not during an outage (``backends``): an entry kept in this process only would be
    invisible to the other instances and outlive a removal they make."""
    if lookup.status != "miss" or lookup.context is None or not response.get("choices"):
        return
    await cache_tiers().or_skip(lambda: _cache_store(lookup, response=response), None)


async def _cache_store(lookup: CacheLookup, *, response: dict) -> None:
    if response_size(response) > settings.CACHE_MAX_ENTRY_CHARS:
        metrics.CACHE_NOT_STORED.labels(reason="answer_too_large").inc()
        return
    context = lookup.context
    entry = _entry_for(context, response)
    if context.semantic_allowed:
        # The exact tier serves this process at once; the embedding (milliseconds, or the
        # model's load on a cold process) must not leave a repeat in that gap uncached.
        state = await store.ensure_scope(context.scope)
        with store._lock:
            state.put(store.Entry(**entry.__dict__))
        try:
            entry.vector = await (
                lookup.embedding
                if lookup.embedding is not None
                else _embed_question(context.question)
            )
        except Exception as error:
            # The exact tier never depends on the embedder: the entry is stored and shared
            # without a vector, and the semantic tier's failure is reported once.
            tier.semantic_failed(error)
            entry.vector = None
    await store_entry(entry)


def _entry_for(context: CacheContext, response: dict) -> store.Entry:
    return store.Entry(
        key=context.exact_key,
        scope=context.scope,
        organization_id=context.organization_id,
        fingerprint=context.context_fingerprint,
        question=context.question,
        model=context.model,
        expires_at=time.time() + settings.CACHE_TTL_SECONDS,
        response=response,
    )


async def _embed_question(question: str):
    def embed():
        embedder = store.embedder()
        text = normalize_for_embedding(text=question, lexicon=english_lexicon())
        return embedder.embed([text])[0]

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(store._embed_executor, embed)


async def store_entry(entry: store.Entry) -> list[str]:
    """Put an entry in every tier; returns the keys evicted to make room."""
    state = await store.ensure_scope(entry.scope)
    vector = entry.vector
    with store._lock:
        state.put(store.Entry(**entry.__dict__))
    evicted = await cache_tiers().store(state, entry)
    # The durable copy never holds up the caller: a Redis flush is the only thing it is for.
    store._in_background(
        store._swallow(
            run_in_db_thread(store.db_save_blocking, entry, vector, evicted),
            "saving a cache entry to the database",
        )
    )
    return evicted


__all__ = [
    "ANSWER_SHAPING_FIELDS",
    "OFF",
    "CacheContext",
    "CacheLookup",
    "cache_context",
    "cache_lookup",
    "cache_scope",
    "cache_store",
    "caching_enabled",
    "final_user_text",
    "prompt_size",
    "response_size",
    "semantic_allowed_for",
]
