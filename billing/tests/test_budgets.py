"""Budgets: reserve, settle, release; hard limit 429; soft alert once; races."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from django.db import connection

from accounts import services as accounts_services
from billing import budgets, services, usage
from billing.budgets import BudgetExceeded, budget_release, budget_reserve, budget_settle
from billing.models import AlertKind, BudgetAlert, DailyUsageRollup
from billing.tests.conftest import REAL_REDIS_URL, REDIS_SKIP, make_event
from common import testing
from common.errors import error_response
from synthlang_site.celery import app as celery_app

DOLLAR = 1_000_000


@pytest.fixture(autouse=True)
def _eager_tasks():
    # Alerts are Celery tasks; run them here even when the run has a broker.
    original = celery_app.conf.task_always_eager  # reading it loads the configuration
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = original


def _reserve(org, user=None, key=None, estimate=DOLLAR):
    return budget_reserve(
        organization_id=org.pk,
        user_id=user.pk if user else None,
        api_key_id=key.pk if key else None,
        estimate_micros=estimate,
    )


@pytest.mark.django_db
def test_without_a_budget_nothing_is_held(backend, org_a, alice):
    reservation = _reserve(org_a, alice, estimate=10**15)
    assert reservation.holds == ()
    budget_settle(reservation, actual_micros=5)


@pytest.mark.django_db
def test_reserve_settle_and_release_move_the_counter(backend, org_a, alice):
    budget = services.budget_set(organization=org_a, monthly_limit_micros=10 * DOLLAR)
    first = _reserve(org_a, alice, estimate=3 * DOLLAR)
    assert budgets.budget_counter_value(budget_id=budget.pk) == 3 * DOLLAR
    budget_settle(first, actual_micros=DOLLAR)
    budget_settle(first, actual_micros=DOLLAR)  # a second settle changes nothing
    assert budgets.budget_counter_value(budget_id=budget.pk) == DOLLAR
    second = _reserve(org_a, alice, estimate=2 * DOLLAR)
    budget_release(second)
    assert budgets.budget_counter_value(budget_id=budget.pk) == DOLLAR


@pytest.mark.django_db
def test_the_hard_limit_rejects_with_openai_insufficient_quota(backend, org_a, alice):
    services.budget_set(organization=org_a, monthly_limit_micros=5 * DOLLAR)
    _reserve(org_a, alice, estimate=4 * DOLLAR)
    with pytest.raises(BudgetExceeded) as caught:
        _reserve(org_a, alice, estimate=2 * DOLLAR)
    response = error_response(caught.value)
    assert response.status_code == 429
    body = json.loads(response.content)
    assert body["error"]["code"] == "insufficient_quota"
    assert body["error"]["type"] == "insufficient_quota"
    assert body["error"]["message"].startswith("You exceeded your current quota")
    # What is left still fits.
    _reserve(org_a, alice, estimate=DOLLAR)
    assert BudgetAlert.objects.filter(kind=AlertKind.HARD).count() == 1


@pytest.mark.django_db
def test_member_and_key_budgets_apply_only_to_their_member_and_key(backend, org_a, alice, bob):
    bob_key, _ = accounts_services.api_key_create(organization=org_a, user=bob, actor=alice)
    alice_key, _ = accounts_services.api_key_create(organization=org_a, user=alice, actor=alice)
    services.budget_set(organization=org_a, user=bob, monthly_limit_micros=2 * DOLLAR)
    services.budget_set(organization=org_a, api_key=alice_key, monthly_limit_micros=DOLLAR)
    with pytest.raises(BudgetExceeded, match="your monthly budget"):
        _reserve(org_a, bob, bob_key, estimate=3 * DOLLAR)
    with pytest.raises(BudgetExceeded, match="API key's monthly budget"):
        _reserve(org_a, alice, alice_key, estimate=2 * DOLLAR)
    other_key, _ = accounts_services.api_key_create(organization=org_a, user=alice, actor=alice)
    assert _reserve(org_a, alice, other_key, estimate=50 * DOLLAR).holds == ()


@pytest.mark.django_db
def test_a_rejection_holds_nothing_in_any_budget(backend, org_a, alice):
    org_budget = services.budget_set(organization=org_a, monthly_limit_micros=100 * DOLLAR)
    services.budget_set(organization=org_a, user=alice, monthly_limit_micros=DOLLAR)
    with pytest.raises(BudgetExceeded):
        _reserve(org_a, alice, estimate=2 * DOLLAR)
    assert budgets.budget_counter_value(budget_id=org_budget.pk) == 0


@pytest.mark.django_db
def test_counters_are_seeded_from_the_months_settled_cost(backend, org_a, alice):
    budget = services.budget_set(organization=org_a, monthly_limit_micros=10 * DOLLAR)
    usage.usage_record(
        make_event(
            org_a,
            alice,
            model="o1",
            upstream_model="o1",
            prompt_tokens=100_000,
            completion_tokens=100_000,
        )
    )  # 1.5 + 6 = $7.50
    usage.usage_flush_run()
    # As after a Redis flush: no counter yet, the month's cost comes from the rollups.
    budgets.budget_counter_reset(budget_id=budget.pk)
    _reserve(org_a, alice, estimate=2 * DOLLAR)
    assert budgets.budget_counter_value(budget_id=budget.pk) == int(9.5 * DOLLAR)
    with pytest.raises(BudgetExceeded):
        _reserve(org_a, alice, estimate=DOLLAR)


@pytest.mark.django_db
def test_the_soft_limit_alerts_once_a_month(backend, org_a, alice):
    services.budget_set(
        organization=org_a, monthly_limit_micros=100 * DOLLAR, soft_limit_micros=5 * DOLLAR
    )
    for _ in range(8):
        budget_settle(_reserve(org_a, alice, estimate=2 * DOLLAR), actual_micros=DOLLAR)
    alerts = list(BudgetAlert.objects.all())
    assert len(alerts) == 1
    assert (alerts[0].kind, alerts[0].spent_micros, alerts[0].limit_micros) == (
        AlertKind.SOFT,
        5 * DOLLAR,
        5 * DOLLAR,
    )
    # Even a process that lost its flag (a restart) cannot raise it twice.
    budgets.budget_counters_forget()
    assert (
        services.budget_alert_raise(
            budget_id=alerts[0].budget_id,
            month=alerts[0].month,
            kind=AlertKind.SOFT,
            spent_micros=9,
        )
        is None
    )


@pytest.mark.django_db
def test_the_soft_limit_webhook_is_posted(backend, org_a, alice):
    from billing.tests.test_budget_webhooks import receiver

    with receiver() as (url, posted):
        services.budget_set(
            organization=org_a,
            monthly_limit_micros=None,
            soft_limit_micros=DOLLAR,
            webhook_url=f"{url}/budget",
        )
        from django.test import TestCase

        # The webhook is queued on commit of the alert; run what the commit would run.
        with TestCase.captureOnCommitCallbacks(execute=True):
            budget_settle(_reserve(org_a, alice, estimate=DOLLAR), actual_micros=DOLLAR)
    assert [payload["type"] for _path, payload in posted] == ["budget.soft_limit_reached"]
    assert posted[0][1]["organization"] == "org-a"
    assert BudgetAlert.objects.get().webhook_delivered_at is not None


def _race_in_threads(org, user, estimate, threads, tries):
    counts = {"ok": 0, "rejected": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker():
        barrier.wait()
        for _ in range(tries):
            try:
                reservation = _reserve(org, user, estimate=estimate)
            except BudgetExceeded:
                with lock:
                    counts["rejected"] += 1
                continue
            budget_settle(reservation, actual_micros=estimate)
            with lock:
                counts["ok"] += 1
        connection.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return counts


def _nearly_exhausted_budget(org, *, spent, limit):
    """A budget with ``spent`` already settled this month (in the rollups, so it seeds)."""
    DailyUsageRollup.objects.create(
        day=datetime.now(UTC).date(),
        organization=org,
        model="gpt-4o",
        requests=1,
        cost_micros=spent,
    )
    return services.budget_set(organization=org, monthly_limit_micros=limit)


@pytest.mark.django_db(transaction=True)
def test_concurrent_threads_never_overspend_a_nearly_exhausted_budget(backend, org_a, alice):
    estimate = 7_000
    remaining = 20 * estimate + 3_000
    budget = _nearly_exhausted_budget(org_a, spent=50 * DOLLAR, limit=50 * DOLLAR + remaining)
    # Budgets and seeds are read before the threads start (SQLite allows one writer).
    budgets.budget_counter_reset(budget_id=budget.pk)

    counts = _race_in_threads(org_a, alice, estimate, threads=16, tries=10)

    assert counts["ok"] + counts["rejected"] == 160
    # Atomic check-and-add: exactly as many as fit, not one more (nor fewer).
    assert counts["ok"] * estimate <= remaining < (counts["ok"] + 1) * estimate
    spent = budgets.budget_counter_value(budget_id=budget.pk)
    assert spent == 50 * DOLLAR + counts["ok"] * estimate <= 50 * DOLLAR + remaining + estimate


@pytest.mark.django_db(transaction=True)
def test_two_proxy_processes_never_overspend_a_shared_budget(settings, org_a, alice):
    if not REAL_REDIS_URL:
        pytest.skip(REDIS_SKIP + "; two processes share budgets only through Redis")
    settings.CACHE_TYPE = "redis"
    estimate = 9_000
    # 2 processes x 8 threads x 50 tries = 800 attempts for 500 that fit: neither process
    # alone can exhaust it, so both are still reserving when the budget runs out.
    remaining = 500 * estimate + 4_000
    budget = _nearly_exhausted_budget(org_a, spent=10 * DOLLAR, limit=10 * DOLLAR + remaining)
    env = {
        **os.environ,
        "DEBUG": "true",
        "LOG_FILE": "",
        "CACHE_TYPE": "redis",
        "REDIS_URL": REAL_REDIS_URL,
        "SECRET_KEY": django_settings.SECRET_KEY,
        "ENCRYPTION_KEY": ",".join(django_settings.ENCRYPTION_KEYS),
        **testing.test_database_env(),
    }
    start_at = time.time() + 4.0  # both import Django first, then start together
    args = [str(value) for value in (org_a.pk, alice.pk, 0, estimate, 8, 50, start_at)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "billing.tests.budget_race_worker", *args],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    ok = sum(result["ok"] for result in results)
    assert sum(result["ok"] + result["rejected"] for result in results) == 2 * 8 * 50
    assert all(result["ok"] > 0 for result in results), results  # both really competed
    assert ok * estimate <= remaining < (ok + 1) * estimate
    assert budgets.budget_counter_value(budget_id=budget.pk) == 10 * DOLLAR + ok * estimate


@pytest.mark.django_db
def test_async_reserve_and_settle_share_the_counters(backend, org_a, alice):
    import asyncio

    budget = services.budget_set(organization=org_a, monthly_limit_micros=3 * DOLLAR)

    async def scenario():
        first = await budgets.abudget_reserve(
            organization_id=org_a.pk, user_id=alice.pk, api_key_id=None, estimate_micros=2 * DOLLAR
        )
        with pytest.raises(BudgetExceeded):
            await budgets.abudget_reserve(
                organization_id=org_a.pk,
                user_id=alice.pk,
                api_key_id=None,
                estimate_micros=2 * DOLLAR,
            )
        await budgets.abudget_settle(first, actual_micros=DOLLAR // 2)
        second = await budgets.abudget_reserve(
            organization_id=org_a.pk, user_id=alice.pk, api_key_id=None, estimate_micros=2 * DOLLAR
        )
        await budgets.abudget_release(second)

    budget_cache_warm = budgets.selectors.budgets_applicable(
        organization_id=org_a.pk, user_id=alice.pk, api_key_id=None
    )
    assert budget_cache_warm
    budgets.budget_reserve(
        organization_id=org_a.pk, user_id=alice.pk, api_key_id=None, estimate_micros=0
    )  # seeds the counter here, so the loop needs no database
    asyncio.run(scenario())
    assert budgets.budget_counter_value(budget_id=budget.pk) == DOLLAR // 2
