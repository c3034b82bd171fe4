"""The response cache's backend: chosen from the settings, and its one failure policy."""

from __future__ import annotations

import asyncio

import pytest

from accounts.selectors import principal_for_key
from common.local_state import local_state_forget
from common.outages import OUTAGE_FALLBACKS, redis_outage
from common.redis import redis_clients_forget
from proxy import response_cache
from proxy.models import CacheEntry
from proxy.response_cache import store
from proxy.response_cache.backends import MemoryCacheTiers, RedisCacheTiers, cache_tiers

# Pool threads read and write the cache's rows: they need committed data.
pytestmark = pytest.mark.django_db(transaction=True)
NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1
ANSWER = {
    "id": "chatcmpl-test",
    "object": "chat.completion",
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Four."}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


def _skipped() -> float:
    return OUTAGE_FALLBACKS.labels(component="cache", action="skipped")._value.get()


async def _settle() -> None:
    while store._background:
        await asyncio.gather(*list(store._background), return_exceptions=True)


def test_the_backend_is_chosen_from_the_settings_and_again_when_they_change(settings):
    settings.CACHE_TYPE = "memory"
    memory = cache_tiers()
    assert isinstance(memory, MemoryCacheTiers)
    assert cache_tiers() is memory  # chosen once, not per call
    settings.CACHE_TYPE = "redis"
    settings.REDIS_URL = NOWHERE
    assert isinstance(cache_tiers(), RedisCacheTiers)
    settings.REDIS_URL = ""
    assert isinstance(cache_tiers(), MemoryCacheTiers)


def test_the_backend_is_forgotten_with_the_rest_of_the_process_state(settings):
    settings.CACHE_TYPE = "memory"
    before = cache_tiers()
    local_state_forget()
    assert cache_tiers() is not before


def test_an_outage_skips_the_store_and_the_lookup_and_counts_both(settings, alice_key):
    settings.ENABLE_CACHE = True
    settings.CACHE_TYPE = "memory"
    principal = principal_for_key(alice_key)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}

    async def lookup():
        return await response_cache.cache_lookup(principal=principal, body=body, control="")

    miss = asyncio.run(lookup())
    assert miss.status == "miss"

    # Redis goes away between the lookup and the store.
    settings.CACHE_TYPE = "redis"
    settings.REDIS_URL = NOWHERE
    settings.REDIS_RETRY_SECONDS = 60
    redis_clients_forget()
    try:
        before = _skipped()

        async def store_answer():
            await response_cache.cache_store(miss, response=ANSWER)
            await _settle()

        asyncio.run(store_answer())  # no error: skipped
        assert redis_outage.down
        assert _skipped() == before + 1
        assert not CacheEntry.objects.exists()  # not even the durable copy

        assert asyncio.run(lookup()).status == "off"  # skipped before Redis is tried
        assert _skipped() == before + 2
    finally:
        redis_clients_forget()


def test_the_end_of_an_outage_forgets_what_this_process_kept_of_the_scopes():
    # A store made as Redis went away left its entry here only; after the outage the scope
    # is read again from Redis rather than served from that copy.
    with store._lock:
        store._scopes["org:1"] = store.ScopeState()
    redis_outage.failed(ConnectionError("gone"))
    redis_outage.succeeded()
    assert store._scope("org:1") is None
