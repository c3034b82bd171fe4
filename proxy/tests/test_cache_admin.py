"""The cache entries' admin: each organization admin lists their own, and clearing reaches
every tier."""

from __future__ import annotations

import asyncio
import os

import pytest
from django.test import Client
from django.urls import reverse

from common import redis as shared_redis
from proxy import response_cache
from proxy.models import CacheEntry
from proxy.response_cache import store
from proxy.tests.test_cache_tiers import answer, body, lookup_now, principal_of, settle

# Pool threads read and write the cache's rows: they need committed data.
pytestmark = pytest.mark.django_db(transaction=True)
REDIS_URL = os.environ.get("REDIS_URL", "")
CHANGELIST = "admin:proxy_cacheentry_changelist"

CANCEL = "How do I cancel my subscription?"
CANCEL_REWORDED = "how do i cancle my subscripton"
REFUND = "What is our refund window?"
ORG_B_QUESTION = "Which port does PostgreSQL use?"


@pytest.fixture
def entries(settings, org_a, org_b):
    """Two answers cached for org_a and one for org_b, in the run's mode (Redis when there is
    one): in this process's memory, in Redis and in the database."""
    settings.ENABLE_CACHE = True
    settings.CACHE_TYPE = "redis" if REDIS_URL else "memory"
    store.memory_forget()
    if REDIS_URL:
        shared_redis.sync_redis().flushdb()

    async def fill():
        for organization, question in ((org_a, CANCEL), (org_a, REFUND), (org_b, ORG_B_QUESTION)):
            principal = principal_of(organization, key_id=organization.pk)
            lookup = await response_cache.cache_lookup(
                principal=principal, body=body(question), control=""
            )
            await response_cache.cache_store(lookup, response=answer(f"Answer: {question}"))
        await settle()

    asyncio.run(fill())
    yield
    store.memory_forget()


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def clear(client: Client, entries: list[CacheEntry]):
    # What the change list's form sends: the action, the ticked rows, and its Go button.
    return client.post(
        reverse(CHANGELIST),
        {
            "action": "clear_selected",
            "_selected_action": [entry.pk for entry in entries],
            "index": "0",
        },
        follow=True,
    )


def listed(response) -> list[str]:
    return sorted(row.question for row in response.context["cl"].result_list)


def test_an_organization_admin_lists_only_their_organizations_entries(entries, alice, charlie):
    response = login(alice).get(reverse(CHANGELIST))

    assert response.status_code == 200
    assert listed(response) == sorted([CANCEL, REFUND])
    assert ORG_B_QUESTION not in response.content.decode()
    assert listed(login(charlie).get(reverse(CHANGELIST))) == [ORG_B_QUESTION]


def test_clearing_selected_entries_removes_them_from_the_database_and_the_live_cache(
    entries, alice, org_a
):
    assert lookup_now(org_a, CANCEL_REWORDED).tier == "semantic"  # the index serves it before
    selected = CacheEntry.objects.get(question=CANCEL)

    response = clear(login(alice), [selected])

    assert "Cleared 1 cache entries." in response.content.decode()
    assert not CacheEntry.objects.filter(pk=selected.pk).exists()
    # Gone from every tier: memory, Redis and the semantic index, not only the row.
    assert lookup_now(org_a, CANCEL).status == "miss"
    assert lookup_now(org_a, CANCEL_REWORDED).status == "miss"
    # What was not selected stays.
    assert CacheEntry.objects.filter(question=REFUND).exists()
    assert lookup_now(org_a, REFUND).status == "hit"


def test_another_organizations_admin_can_neither_see_nor_clear_the_entries(entries, charlie, org_a):
    client = login(charlie)
    rows = list(CacheEntry.objects.filter(organization=org_a))

    assert client.get(reverse("admin:proxy_cacheentry_change", args=[rows[0].pk])).status_code == (
        404
    )
    clear(client, rows)

    assert CacheEntry.objects.filter(organization=org_a).count() == 2
    assert lookup_now(org_a, CANCEL).status == "hit"
    assert lookup_now(org_a, REFUND).status == "hit"
