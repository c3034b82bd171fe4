"""The cache's tiers in-process: semantic verification, LRU and TTL bounds, the database tier."""

from __future__ import annotations

import asyncio
import gc
import os
import time

import pytest

from accounts.selectors import Principal
from common import redis as shared_redis
from proxy import metrics, response_cache
from proxy.response_cache import services as cache_services
from proxy.response_cache import store

# Pool threads read and write the cache's rows: they need committed data.
pytestmark = pytest.mark.django_db(transaction=True)
REDIS_URL = os.environ.get("REDIS_URL", "")


@pytest.fixture
def cache_mode(settings):
    """Redis mode when the run has a Redis (CI), memory mode otherwise; empty either way."""
    settings.ENABLE_CACHE = True
    settings.CACHE_TYPE = "redis" if REDIS_URL else "memory"
    store.memory_forget()
    shared_redis._async_clients.clear()  # a client is bound to the loop of its test
    if REDIS_URL:
        shared_redis.sync_redis().flushdb()
    yield settings.CACHE_TYPE
    store.memory_forget()
    shared_redis._async_clients.clear()


def principal_of(organization, key_id: int = 1) -> Principal:
    return Principal(
        key_id=key_id,
        key_prefix="sk-syn-test",
        organization_id=organization.pk,
        organization_slug=organization.slug,
        user_id=1,
        username="tester",
        role="admin",
        expires_at=None,
    )


def body(question: str) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": question}]}


def answer(text: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


async def ask(principal: Principal, question: str) -> response_cache.CacheLookup:
    return await response_cache.cache_lookup(principal=principal, body=body(question), control="")


async def remember(principal: Principal, question: str, text: str) -> None:
    lookup = await ask(principal, question)
    assert lookup.status == "miss"
    await response_cache.cache_store(lookup, response=answer(text))


async def settle() -> None:
    """Let the background writes (database copy, counters) finish."""
    while store._background:
        await asyncio.gather(*list(store._background), return_exceptions=True)


def lookup_now(organization, question: str) -> response_cache.CacheLookup:
    """A lookup from synchronous test code (as a key of that organization), its background
    writes landed."""

    async def scenario():
        found = await response_cache.cache_lookup(
            principal=principal_of(organization, key_id=organization.pk),
            body=body(question),
            control="",
        )
        await settle()
        return found

    return asyncio.run(scenario())


def test_reworded_question_is_a_semantic_hit_and_another_entity_is_not(cache_mode, org_a):
    async def scenario():
        principal = principal_of(org_a)
        await remember(principal, "How do I cancel my subscription?", "Settings, then Cancel.")
        await remember(principal, "What is the capital of France?", "Paris.")
        reworded = await ask(principal, "how do i cancle my subscripton")
        assert (reworded.status, reworded.tier) == ("hit", "semantic")
        assert reworded.response["choices"][0]["message"]["content"] == "Settings, then Cancel."
        other_entity = await ask(principal, "What is the capital of Germany?")
        assert other_entity.status == "miss"
        await settle()

    asyncio.run(scenario())


def test_exact_repeat_is_an_exact_hit(cache_mode, org_a):
    async def scenario():
        principal = principal_of(org_a)
        await remember(principal, "What is 2 + 2?", "4")
        repeat = await ask(principal, "what is 2 + 2")
        assert (repeat.status, repeat.tier) == ("hit", "exact")
        await settle()

    asyncio.run(scenario())


def test_another_organization_never_gets_the_entry(cache_mode, org_a, org_b):
    async def scenario():
        await remember(principal_of(org_a), "What is our refund window?", "30 days.")
        assert (await ask(principal_of(org_b, key_id=2), "What is our refund window?")).status == (
            "miss"
        )
        assert (await ask(principal_of(org_b, key_id=2), "what's our refund window")).status == (
            "miss"
        )
        await settle()

    asyncio.run(scenario())


def test_database_tier_serves_after_redis_and_memory_are_lost(cache_mode, org_a):
    async def scenario():
        principal = principal_of(org_a)
        await remember(principal, "Which port does PostgreSQL use?", "5432.")
        await settle()
        if cache_mode == "redis":
            shared_redis.sync_redis().flushdb()
        store.memory_forget()  # a new process after the Redis flush
        found = await ask(principal, "Which port does PostgreSQL use?")
        assert found.status == "hit"
        assert found.response["choices"][0]["message"]["content"] == "5432."
        await settle()

    asyncio.run(scenario())


def test_scopes_are_rebuilt_from_the_database_for_the_semantic_tier(cache_mode, org_a):
    async def scenario():
        principal = principal_of(org_a)
        await remember(principal, "How do I reset my password?", "Use the reset link.")
        await settle()
        if cache_mode == "redis":
            shared_redis.sync_redis().flushdb()
        store.memory_forget()
        reworded = await ask(principal, "how do i reset my pasword")
        assert (reworded.status, reworded.tier) == ("hit", "semantic")
        await settle()

    asyncio.run(scenario())


def test_least_recently_used_entry_leaves_at_max_items_and_is_counted(cache_mode, settings, org_a):
    settings.CACHE_MAX_ITEMS = 2
    tier = cache_mode
    before = metrics.CACHE_EVICTIONS.labels(tier=tier)._value.get()

    async def scenario():
        principal = principal_of(org_a)
        await remember(principal, "What is the speed of light?", "c")
        await remember(principal, "What is the boiling point of water?", "100 C")
        assert (await ask(principal, "What is the speed of light?")).status == "hit"
        # A hit marks the entry as used in the background; let that land before the next
        # store decides what is least recently used.
        await settle()
        await remember(principal, "Who wrote Hamlet?", "Shakespeare")
        # The evicted entry leaves the database in the background too; until then the
        # database tier would still serve it.
        await settle()
        assert (await ask(principal, "What is the boiling point of water?")).status == "miss"
        assert (await ask(principal, "What is the speed of light?")).status == "hit"
        assert (await ask(principal, "Who wrote Hamlet?")).status == "hit"
        await settle()
        stats = await cache_services.cache_stats(scope=f"org:{org_a.pk}")
        assert stats["entries"] == 2
        assert stats["evictions"] == 1

    asyncio.run(scenario())
    assert metrics.CACHE_EVICTIONS.labels(tier=tier)._value.get() == before + 1
    from proxy.models import CacheEntry

    assert sorted(CacheEntry.objects.values_list("question", flat=True)) == [
        "What is the speed of light?",
        "Who wrote Hamlet?",
    ]


def test_expired_entry_is_not_served_from_any_tier(cache_mode, settings, org_a):
    settings.CACHE_TTL_SECONDS = 1

    async def scenario():
        principal = principal_of(org_a)
        await remember(principal, "What time zone is Tokyo in?", "JST")
        assert (await ask(principal, "What time zone is Tokyo in?")).status == "hit"
        await settle()
        await asyncio.sleep(1.2)
        assert (await ask(principal, "What time zone is Tokyo in?")).status == "miss"
        assert (await ask(principal, "what time zone is tokyo in")).status == "miss"
        await settle()

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 30


def test_a_miss_embeds_its_question_once_and_stores_that_vector(cache_mode, org_a, monkeypatch):
    """The lookup's embedding is started before Redis answers and reused by the store."""
    embedded: list[list[str]] = []
    real_embed = store.embedder().embed

    def counting_embed(texts):
        embedded.append(list(texts))
        return real_embed(texts)

    monkeypatch.setattr(store.embedder(), "embed", counting_embed)

    async def scenario():
        principal = principal_of(org_a)
        lookup = await ask(principal, "How do I reset my router?")
        assert lookup.status == "miss" and lookup.embedding is not None
        await response_cache.cache_store(lookup, response=answer("Hold the button."))
        assert len(embedded) == 1
        reworded = await ask(principal, "how do i reset my routr")
        assert (reworded.status, reworded.tier) == ("hit", "semantic")
        assert len(embedded) == 2
        # An exact repeat this process already holds needs no embedding at all.
        repeat = await ask(principal, "How do I reset my router?")
        assert (repeat.status, repeat.tier) == ("hit", "exact")
        assert len(embedded) == 2
        await settle()

    asyncio.run(scenario())


def test_a_failing_embedder_costs_the_semantic_tier_only(cache_mode, org_a, monkeypatch):
    """A miss still answers and is still stored, an exact repeat still hits (in this process
    and in another), and the failed embedding task never surfaces as an unretrieved
    exception."""
    from proxy.response_cache import tier

    unhandled = []

    def broken_embed(texts):
        raise RuntimeError("embedding model unavailable")

    async def scenario():
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: unhandled.append(context.get("message"))
        )
        principal = principal_of(org_a)
        await remember(principal, "What is the capital of Norway?", "Oslo.")
        await settle()
        monkeypatch.setattr(store.embedder(), "embed", broken_embed)
        # Another process's entry: this process must go to Redis or the database for it.
        state = store._scope(f"org:{org_a.pk}")
        with store._lock:
            state.entries.clear()
        exact = await ask(principal, "What is the capital of Norway?")
        reworded = await ask(principal, "what is the capitol of norway")
        new = await ask(principal, "What is the capital of Sweden?")
        await response_cache.cache_store(new, response=answer("Stockholm."))
        await settle()
        store.memory_forget()  # a new process: only Redis and the database know the entry
        repeat = await ask(principal, "What is the capital of Sweden?")
        await settle()
        await asyncio.sleep(0.1)
        return exact, reworded, new, repeat

    try:
        exact, reworded, new, repeat = asyncio.run(scenario())
        state = tier.semantic_tier_state()
    finally:
        tier.reset_for_tests()
    gc.collect()
    assert (exact.status, exact.tier) == ("hit", "exact")
    assert reworded.status == "miss"  # no embedding, no semantic tier; not an error
    assert new.status == "miss"
    assert (repeat.status, repeat.tier) == ("hit", "exact")
    assert repeat.response["choices"][0]["message"]["content"] == "Stockholm."
    assert state["status"] == "degraded" and "embedding model unavailable" in state["error"]
    assert not [message for message in unhandled if "never retrieved" in (message or "")]
