"""Warming the cache: indexes loaded at process start, popular entries refreshed before expiry."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from accounts import services as accounts_services
from accounts.models import Organization
from billing import usage
from billing.models import UsageEvent
from common import redis as shared_redis
from proxy import response_cache, tasks
from proxy.models import CacheEntry
from proxy.response_cache import services as cache_services
from proxy.response_cache import store
from proxy.tests.test_cache_tiers import answer, body, lookup_now, principal_of, settle

# Pool threads read and write the cache's rows: they need committed data.
pytestmark = pytest.mark.django_db(transaction=True)
REDIS_URL = os.environ.get("REDIS_URL", "")
DAY = 86_400
# Far more than any refresh here costs: only the tests about the cap reach it.
GENEROUS_CAP_USD = 10.0


@pytest.fixture(autouse=True)
def warming(settings):
    """A cache in the run's mode (Redis when there is one), empty; the fake upstream; usage
    flushed by the test itself."""
    settings.ENABLE_CACHE = True
    settings.CACHE_TYPE = "redis" if REDIS_URL else "memory"
    settings.CACHE_TTL_SECONDS = DAY
    settings.CACHE_WARM_MAX_USD_PER_DAY = GENEROUS_CAP_USD
    settings.OPENAI_API_KEY = ""  # the default provider is the offline fake
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    store.memory_forget()
    usage.memory_buffer.clear()
    if REDIS_URL:
        shared_redis.sync_redis().flushdb()
    yield
    store.memory_forget()
    usage.memory_buffer.clear()


def cache_entry(settings, organization, request: dict, *, expires_in: int, hits: int) -> str:
    """Store an answer to ``request`` through the cache that expires in ``expires_in``
    seconds and has been hit ``hits`` times; returns its question."""
    question = request["messages"][-1]["content"]
    settings.CACHE_TTL_SECONDS = expires_in

    async def scenario():
        principal = principal_of(organization, key_id=organization.pk)
        lookup = await response_cache.cache_lookup(principal=principal, body=request, control="")
        assert lookup.status == "miss"
        await response_cache.cache_store(lookup, response=answer(f"Stored answer: {question}"))
        await settle()

    asyncio.run(scenario())
    settings.CACHE_TTL_SECONDS = DAY
    # Hits reach the database a second after the lookups, in the background: set them here.
    CacheEntry.objects.filter(question=question).update(hits=hits)
    return question


def text_of(response: dict) -> str:
    return response["choices"][0]["message"]["content"]


def expires_in(question: str) -> float:
    row = CacheEntry.objects.get(question=question)
    return (row.expires_at - datetime.now(tz=UTC)).total_seconds()


# --- The refresh ----------------------------------------------------------------------------


def test_a_popular_entry_close_to_expiry_is_asked_again_and_lives_on(settings, org_a):
    popular = cache_entry(settings, org_a, body("What is a mutex?"), expires_in=600, hits=3)
    never_hit = cache_entry(settings, org_a, body("What is a semaphore?"), expires_in=600, hits=0)
    not_due = cache_entry(settings, org_a, body("What is a spinlock?"), expires_in=DAY, hits=9)

    result = tasks.cache_refresh_popular(org_a.pk)

    assert (result["refreshed"], result["stopped_by_cap"]) == (1, False)
    refreshed = CacheEntry.objects.get(question=popular)
    assert expires_in(popular) > DAY - 300
    assert text_of(refreshed.response).startswith("This is a fake answer to: What is a mutex?")
    # Every tier serves the new answer, not only the database.
    live = lookup_now(org_a, popular)
    assert live.status == "hit"
    assert text_of(live.response) == text_of(refreshed.response)
    assert expires_in(never_hit) < 600
    assert text_of(CacheEntry.objects.get(question=never_hit).response).startswith("Stored")
    assert text_of(CacheEntry.objects.get(question=not_due).response).startswith("Stored")


def test_with_a_short_ttl_an_entry_that_would_expire_before_the_next_run_is_refreshed(
    settings, org_a
):
    question = cache_entry(settings, org_a, body("What is a mutex?"), expires_in=1200, hits=2)
    # A tenth of this TTL is 3 minutes, but the next run is an hour away.
    settings.CACHE_TTL_SECONDS = 1800

    assert tasks.cache_refresh_popular(org_a.pk)["refreshed"] == 1
    assert expires_in(question) > 1700


def test_nothing_is_refreshed_or_queued_while_the_cap_is_zero(settings, org_a):
    question = cache_entry(settings, org_a, body("What is a mutex?"), expires_in=600, hits=3)
    settings.CACHE_WARM_MAX_USD_PER_DAY = 0

    assert tasks.cache_refresh_due() == []
    result = tasks.cache_refresh_popular(org_a.pk)

    assert result == {"refreshed": 0, "spent_micros": 0, "stopped_by_cap": False}
    assert expires_in(question) < 600
    usage.usage_flush_run()
    assert not UsageEvent.objects.exists()


def test_the_refresh_stops_at_the_daily_cap(settings, org_a):
    settings.CACHE_WARM_MAX_USD_PER_DAY = 0.000001  # one micro-dollar: one call spends it
    settings.UNKNOWN_MODEL_PRICE_PER_MTOK_USD = "5"  # a price even if the list is empty
    first = cache_entry(settings, org_a, body("What is a mutex?"), expires_in=600, hits=5)
    second = cache_entry(settings, org_a, body("What is a semaphore?"), expires_in=600, hits=4)

    result = tasks.cache_refresh_popular(org_a.pk)

    assert (result["refreshed"], result["stopped_by_cap"]) == (1, True)
    assert result["spent_micros"] > 0
    assert expires_in(first) > DAY - 300  # the most hit goes first
    assert expires_in(second) < 600
    # The cap is per day, not per run.
    again = tasks.cache_refresh_popular(org_a.pk)
    assert (again["refreshed"], again["stopped_by_cap"]) == (0, True)
    assert expires_in(second) < 600


def test_entries_asked_with_a_system_prompt_or_parameters_are_not_refreshed(settings, org_a):
    with_system = cache_entry(
        settings,
        org_a,
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Answer like a pirate."},
                {"role": "user", "content": "What is a mutex?"},
            ],
        },
        expires_in=600,
        hits=9,
    )
    with_parameters = cache_entry(
        settings,
        org_a,
        {**body("What is a semaphore?"), "temperature": 0, "max_tokens": 5},
        expires_in=600,
        hits=9,
    )
    bare = cache_entry(settings, org_a, body("What is a spinlock?"), expires_in=600, hits=1)

    result = tasks.cache_refresh_popular(org_a.pk)

    # Re-asked without its system prompt or parameters, the answer would be another one.
    assert result["refreshed"] == 1
    assert expires_in(bare) > DAY - 300
    for question in (with_system, with_parameters):
        assert expires_in(question) < 600
        assert text_of(CacheEntry.objects.get(question=question).response).startswith("Stored")


def test_the_refresh_is_accounted_to_the_organization(settings, org_a):
    question = cache_entry(settings, org_a, body("What is a mutex?"), expires_in=600, hits=3)

    tasks.cache_refresh_popular(org_a.pk)
    usage.usage_flush_run()

    event = UsageEvent.objects.get()
    refreshed = CacheEntry.objects.get(question=question)
    assert event.request_id.startswith("req_cache_warm_")
    assert event.organization_id == org_a.pk
    assert (event.user_id, event.api_key_id) == (None, None)
    assert (event.model, event.provider) == ("gpt-4o", "fake")
    assert event.prompt_tokens == refreshed.response["usage"]["prompt_tokens"] > 0
    assert event.completion_tokens == refreshed.response["usage"]["completion_tokens"] > 0


# --- Queueing ---------------------------------------------------------------------------------


def test_the_due_task_queues_only_organizations_with_popular_entries_about_to_expire(
    settings, celery_eager, org_a, org_b
):
    org_c = accounts_services.organization_create(name="Org C", slug="org-c")
    due_a = cache_entry(settings, org_a, body("What is a mutex?"), expires_in=600, hits=3)
    # org_b turned its cache off after the entry was stored.
    due_b = cache_entry(settings, org_b, body("What is a semaphore?"), expires_in=600, hits=3)
    Organization.objects.filter(pk=org_b.pk).update(cache_enabled=False)
    cache_entry(settings, org_c, body("What is a spinlock?"), expires_in=600, hits=0)
    cache_entry(settings, org_c, body("What is a futex?"), expires_in=DAY, hits=7)

    assert tasks.cache_refresh_due() == [org_a.pk]

    # Queued, and (eager here) run: the refresh reached org_a's entry and no other.
    assert expires_in(due_a) > DAY - 300
    assert expires_in(due_b) < 600
    assert sorted(
        CacheEntry.objects.filter(expires_at__gt=_soon()).values_list("question", flat=True)
    ) == ["What is a futex?", "What is a mutex?"]


def _soon() -> datetime:
    return datetime.now(tz=UTC) + timedelta(hours=12)


def test_beat_runs_the_due_task_by_a_name_the_worker_knows():
    from synthlang_site.celery import app

    entry = django_settings.CELERY_BEAT_SCHEDULE["proxy-cache-refresh-due"]
    assert import_string(entry["task"]) is tasks.cache_refresh_due
    assert app.tasks[entry["task"]].name == tasks.cache_refresh_due.name == entry["task"]
    assert 0 < entry["schedule"] <= 3600


# --- Process start ------------------------------------------------------------------------------


def test_process_start_loads_the_indexes_so_the_first_lookup_does_not(settings, org_a, monkeypatch):
    question = cache_entry(
        settings, org_a, body("How do I cancel my subscription?"), expires_in=DAY, hits=0
    )
    if REDIS_URL:
        shared_redis.sync_redis().flushdb()  # from the database, as after a Redis restart
    store.memory_forget()  # a new process

    warm_up = cache_services.cache_warm_start()
    warm_up.join(timeout=120)

    scope = f"org:{org_a.pk}"
    state = store._scope(scope)
    assert state is not None
    row = CacheEntry.objects.get(question=question)
    assert row.exact_key in state.entries
    assert len(state.indexes[row.context_fingerprint]) == 1

    def no_loading(name):
        raise AssertionError(f"the lookup loaded scope {name}")

    monkeypatch.setattr(store, "load_scope_blocking", no_loading)
    reworded = lookup_now(org_a, "how do i cancle my subscripton")
    assert (reworded.status, reworded.tier) == ("hit", "semantic")
