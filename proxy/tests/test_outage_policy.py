"""The outage policy in one process: what limits, budgets and the cache do while Redis is
unreachable, that the outage is reported once, and that the process goes back to Redis by
itself when it answers again."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from django.db import OperationalError

from accounts import services
from accounts.selectors import principal_for_key
from billing import budgets
from billing import services as billing_services
from common import health
from common.errors import ServiceUnavailable
from common.outages import redis_outage
from common.redis import redis_clients_forget
from common.testing import RedisServer
from proxy import ratelimit, response_cache

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def redis_down(settings):
    settings.CACHE_TYPE = "redis"
    settings.REDIS_URL = NOWHERE
    settings.REDIS_RETRY_SECONDS = 60
    redis_clients_forget()
    budgets.budget_counters_forget()
    yield settings
    redis_clients_forget()
    budgets.budget_counters_forget()


@pytest.fixture
def limited_principal(org_a, bob):
    _, key = services.api_key_create(organization=org_a, user=bob, rpm_limit=2, actor=None)
    return principal_for_key(key)


def _admit(principal):
    return asyncio.run(ratelimit.admit(principal, tokens=10))


@pytest.mark.django_db
def test_with_redis_unreachable_limits_are_counted_in_this_process(
    redis_down, limited_principal, caplog
):
    caplog.set_level(logging.WARNING, logger="common.outages")
    admissions = [_admit(limited_principal) for _ in range(2)]
    assert all(admission.local for admission in admissions)
    assert admissions[-1].headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(ratelimit.RateLimited):
        _admit(limited_principal)
    for _ in range(5):
        with pytest.raises(ratelimit.RateLimited):
            _admit(limited_principal)
    # One report for the outage, not one per request.
    assert [r.getMessage() for r in caplog.records].count(
        "redis is unreachable (ConnectionError); serving by the outage policy until it "
        "answers again"
    ) == 1
    assert health.component_states()["shared_state"]["status"] == "degraded"


@pytest.mark.django_db
def test_the_refuse_policy_answers_503_with_retry_after(redis_down, limited_principal):
    redis_down.REDIS_OUTAGE_POLICY = "refuse"
    with pytest.raises(ServiceUnavailable) as refused:
        _admit(limited_principal)
    assert refused.value.status == 503
    assert refused.value.code == "service_unavailable"
    assert int(refused.value.headers["retry-after"]) >= 1


@pytest.mark.django_db(transaction=True)  # the budget is read on another thread
def test_a_budget_holds_in_this_process_while_redis_is_unreachable(redis_down, org_a, bob):
    billing_services.budget_set(organization=org_a, monthly_limit_micros=1_000)

    async def reserve(estimate: int):
        return await budgets.abudget_reserve(
            organization_id=org_a.pk, user_id=bob.pk, api_key_id=None, estimate_micros=estimate
        )

    held = asyncio.run(reserve(600))
    assert held.local
    with pytest.raises(budgets.BudgetExceeded):
        asyncio.run(reserve(600))  # 600 + 600 > 1,000, counted here
    asyncio.run(budgets.abudget_release(held))
    assert asyncio.run(reserve(600)).local


@pytest.mark.django_db
def test_a_budget_is_a_503_under_the_refuse_policy(redis_down, org_a, bob):
    redis_down.REDIS_OUTAGE_POLICY = "refuse"
    billing_services.budget_set(organization=org_a, monthly_limit_micros=1_000)
    with pytest.raises(ServiceUnavailable):
        budgets.budget_reserve(
            organization_id=org_a.pk, user_id=bob.pk, api_key_id=None, estimate_micros=10
        )


@pytest.mark.django_db
def test_the_cache_is_skipped_during_an_outage(redis_down, alice_key):
    principal = principal_for_key(alice_key)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}

    async def lookup():
        return await response_cache.cache_lookup(principal=principal, body=body, control="")

    assert asyncio.run(lookup()).status == "off"
    assert redis_outage.down  # the lookup itself noticed it
    assert asyncio.run(lookup()).status == "off"


@pytest.mark.django_db
def test_the_process_goes_back_to_redis_when_it_answers_again(settings, limited_principal):
    server = RedisServer()
    server.start()
    try:
        settings.CACHE_TYPE = "redis"
        settings.REDIS_URL = server.url
        settings.REDIS_RETRY_SECONDS = 0.2
        assert not _admit(limited_principal).local
        server.stop()
        assert _admit(limited_principal).local
        assert redis_outage.down
        server.start()
        time.sleep(0.3)  # the next call is the probe
        back = _admit(limited_principal)
        assert not back.local and not redis_outage.down
        assert health.component_states()["shared_state"]["status"] == "ok"
    finally:
        server.stop()


def test_health_names_the_failure_without_its_text():
    def failing():
        raise OperationalError('connection to server at "10.1.2.3", port 5432 failed')

    state = health._timed(failing)
    assert state == {
        "status": "error",
        "error": "OperationalError",
        "latency_ms": state["latency_ms"],
    }


@pytest.mark.django_db
def test_connections_pooled_before_a_redis_restart_do_not_start_an_outage(
    settings, limited_principal
):
    """redis-py's pool (the stock client) must notice that its idle connections died with
    the server and open new ones, instead of failing a command on each after Redis is back."""
    settings.SYNTHLANG_FAST_PATHS = False
    settings.CACHE_TYPE = "redis"
    server = RedisServer()
    server.start()
    settings.REDIS_URL = server.url
    redis_clients_forget()

    async def scenario() -> list[bool]:
        from common.redis import async_redis

        # Several connections in the pool, all idle when the server goes.
        await asyncio.gather(*(async_redis().incr("synthlang:test:pooled") for _ in range(6)))
        server.stop()
        server.start()
        await asyncio.sleep(0.2)
        return [(await ratelimit.admit(limited_principal, tokens=1)).local for _ in range(2)]

    try:
        assert asyncio.run(scenario()) == [False, False]
        assert not redis_outage.down
    finally:
        server.stop()
        redis_clients_forget()


def test_a_reply_sent_before_the_failure_does_not_end_the_outage():
    """Replies already on their way when Redis stopped arrive after another call failed:
    they must not end the outage (which would reset the local counters mid-outage)."""
    sent_before = time.monotonic()
    redis_outage.failed(ConnectionError("gone"))
    assert redis_outage.down
    redis_outage.succeeded(sent_before)
    assert redis_outage.down
    redis_outage.succeeded(time.monotonic())
    assert not redis_outage.down


@pytest.mark.django_db
def test_health_probes_redis_during_an_outage_without_traffic(settings):
    server = RedisServer()
    server.start()
    try:
        settings.CACHE_TYPE = "redis"
        settings.REDIS_URL = server.url
        settings.REDIS_RETRY_SECONDS = 0.2
        redis_clients_forget()
        redis_outage.failed(ConnectionError("gone"))
        time.sleep(0.3)  # the next call may probe
        assert health.component_states()["shared_state"]["status"] == "ok"
    finally:
        server.stop()
        redis_clients_forget()
