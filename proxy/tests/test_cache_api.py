"""The cache through real servers (sharing, what is never cached) and its two endpoints."""

from __future__ import annotations

import asyncio
import os
import time

import openai
import pytest
from django.test import Client
from django.urls import include, path

from common import redis as shared_redis
from common.testing import live_server
from proxy import response_cache
from proxy.cache_views import cache_urlpatterns
from proxy.response_cache import store
from proxy.tests.test_cache_tiers import answer, body, principal_of

pytestmark = pytest.mark.django_db(transaction=True)
REDIS_URL = os.environ.get("REDIS_URL", "")
# The endpoints are mounted by the project's URLconf; here they are mounted on their own.
urlpatterns = [path("v1/", include(cache_urlpatterns))]


def sdk(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)


def ask(client: openai.OpenAI, question: str, model: str = "gpt-4o", **kwargs):
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": question}], **kwargs
    )


def eventually_hit(client: openai.OpenAI, question: str):
    for _ in range(50):  # the first server stores after answering, in the background
        response = ask(client, question)
        if response.headers["x-synthlang-cache"] == "hit":
            return response
        time.sleep(0.1)
    return response


@pytest.mark.live
@pytest.mark.skipif(not REDIS_URL, reason="sharing between processes needs REDIS_URL (Redis)")
def test_two_processes_sharing_redis_see_each_others_entries(live_db, alice_key, tmp_path):
    shared_redis.sync_redis().flushdb()
    env = {"CACHE_TYPE": "redis", "REDIS_URL": REDIS_URL}
    with (
        live_server(env=env, log_path=tmp_path / "one.log") as first,
        live_server(env=env, log_path=tmp_path / "two.log") as second,
    ):
        # Until synthlang_site.asgi calls cache_warm_start, each process loads the embedding
        # model on its first store: do that first, so the timing below is a warm process's.
        for server in (first, second):
            ask(sdk(server, alice_key), f"Warm up {server}")
        time.sleep(3.0)
        original = ask(sdk(first, alice_key), "How do I cancel my subscription?")
        time.sleep(0.5)  # stored after the answer, in the background
        assert original.headers["x-synthlang-cache"] == "miss"
        exact = eventually_hit(sdk(second, alice_key), "How do I cancel my subscription?")
        assert exact.headers["x-synthlang-cache"] == "hit"
        text = original.parse().choices[0].message.content
        assert exact.parse().choices[0].message.content == text
        reworded = ask(sdk(second, alice_key), "how do i cancle my subscripton")
        assert reworded.headers["x-synthlang-cache"] == "hit"
        assert reworded.parse().choices[0].message.content == text
        ask(sdk(second, alice_key), "Which planet is closest to the sun?")
        back = eventually_hit(sdk(first, alice_key), "Which planet is closest to the sun?")
        assert back.headers["x-synthlang-cache"] == "hit"


@pytest.mark.live
def test_upstream_errors_are_never_cached(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    for _ in range(2):
        with pytest.raises(openai.BadRequestError) as raised:
            ask(client, "Will this fail?", model="fake-fail-400")
        assert raised.value.response.headers["x-synthlang-cache"] == "miss"


@pytest.mark.live
def test_an_abandoned_stream_is_never_cached(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    question = "Tell me a long story about the sea."
    stream = client.chat.completions.create(
        model="fake-slow-1000",
        stream=True,
        messages=[{"role": "user", "content": question}],
    )
    next(iter(stream))  # one chunk, then hang up
    stream.close()
    time.sleep(1.0)
    again = ask(client, question, model="fake-slow-1000")
    assert again.headers["x-synthlang-cache"] == "miss"


# --- Endpoints (in-process) ---------------------------------------------------------------


@pytest.fixture
def memory_cache(settings):
    settings.ENABLE_CACHE = True
    settings.CACHE_TYPE = "redis" if REDIS_URL else "memory"
    store.memory_forget()
    shared_redis._async_clients.clear()
    if REDIS_URL:
        shared_redis.sync_redis().flushdb()
    yield
    store.memory_forget()
    shared_redis._async_clients.clear()


def fill(organization, questions: list[str]) -> None:
    async def scenario():
        principal = principal_of(organization)
        for question in questions:
            lookup = await response_cache.cache_lookup(
                principal=principal, body=body(question), control=""
            )
            await response_cache.cache_store(lookup, response=answer(question))
        await response_cache.cache_lookup(principal=principal, body=body(questions[0]), control="")
        while store._background:
            await asyncio.gather(*list(store._background), return_exceptions=True)

    asyncio.run(scenario())
    shared_redis._async_clients.clear()


def call(key: str, method: str, url: str):
    client = Client()
    return getattr(client, method)(url, HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.mark.urls("proxy.tests.test_cache_api")
def test_stats_show_the_callers_scope_only(memory_cache, org_a, org_b, alice_key, charlie_key):
    fill(org_a, ["What is a mutex?", "What is a semaphore?"])
    mine = call(alice_key, "get", "/v1/cache/stats").json()
    assert mine["entries"] == 2
    assert mine["hits"] == 1
    assert mine["misses"] == 2
    assert mine["hit_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert mine["evictions"] == 0
    assert mine["memory_bytes"] > 0
    theirs = call(charlie_key, "get", "/v1/cache/stats").json()
    assert theirs["entries"] == 0


@pytest.mark.urls("proxy.tests.test_cache_api")
def test_clear_needs_the_admin_role(memory_cache, org_a, bob_key):
    fill(org_a, ["What is a mutex?"])
    response = call(bob_key, "post", "/v1/cache/clear")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.urls("proxy.tests.test_cache_api")
def test_clear_empties_the_callers_organization_only(
    memory_cache, org_a, org_b, alice_key, charlie_key
):
    from proxy.models import CacheEntry

    fill(org_a, ["What is a mutex?"])
    fill(org_b, ["What is a deadlock?"])
    assert call(charlie_key, "post", "/v1/cache/clear").status_code == 200
    assert not CacheEntry.objects.filter(organization=org_b).exists()
    assert CacheEntry.objects.filter(organization=org_a).count() == 1
    assert call(alice_key, "get", "/v1/cache/stats").json()["entries"] == 1
    assert call(charlie_key, "get", "/v1/cache/stats").json()["entries"] == 0

    async def still_there():
        lookup = await response_cache.cache_lookup(
            principal=principal_of(org_a), body=body("What is a mutex?"), control=""
        )
        gone = await response_cache.cache_lookup(
            principal=principal_of(org_b), body=body("What is a deadlock?"), control=""
        )
        return lookup.status, gone.status

    assert asyncio.run(still_there()) == ("hit", "miss")


@pytest.mark.live
def test_reworded_question_is_a_semantic_hit_through_the_server(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    original = ask(client, "How do I renew my passport?")
    time.sleep(1.0)
    reworded = ask(client, "how do i renew my pasport")
    assert reworded.headers["x-synthlang-cache"] == "hit"
    text = original.parse().choices[0].message.content
    assert reworded.parse().choices[0].message.content == text
