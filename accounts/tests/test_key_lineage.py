"""A key that creates keys: never a wider one, and its children die with it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey
from accounts.selectors import (
    ApiKeyExpired,
    ApiKeyRevoked,
    principal_cache_forget,
    principal_for_key,
)
from billing import services as billing_services
from billing.budgets import BudgetExceeded, budget_counters_forget, budget_reserve
from billing.selectors import budget_cache_forget

pytestmark = pytest.mark.django_db

KEYS_URL = "/api/keys/"


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def restricted(org_a, alice):
    """Alice's key limited to one model, 2 rpm, 1,000 tpm, expiring in 30 minutes."""
    api_key, plaintext = services.api_key_create(
        organization=org_a,
        user=alice,
        name="restricted",
        allowed_models=["gpt-4o-mini"],
        rpm_limit=2,
        tpm_limit=1000,
        expires_at=timezone.now() + timedelta(minutes=30),
        actor=alice,
    )
    return api_key, plaintext


def test_a_child_of_a_restricted_key_inherits_every_restriction(restricted):
    parent, plaintext = restricted
    response = _client(plaintext).post(KEYS_URL, {"name": "child"}, format="json")

    assert response.status_code == 201, response.content
    child = ApiKey.objects.get(pk=response.json()["id"])
    assert child.parent == parent
    assert child.allowed_models == ["gpt-4o-mini"]
    assert (child.rpm_limit, child.tpm_limit) == (2, 1000)
    assert child.expires_at == parent.expires_at


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"allowed_models": ["gpt-4o"]}, "allowed_models"),
        ({"allowed_models": ["gpt-4o*"]}, "allowed_models"),
        ({"allowed_models": ["*"]}, "allowed_models"),
        ({"rpm_limit": 0}, "rpm_limit"),
        ({"rpm_limit": 3}, "rpm_limit"),
        ({"tpm_limit": 0}, "tpm_limit"),
        ({"tpm_limit": 1001}, "tpm_limit"),
        ({"expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
    ],
)
def test_a_key_cannot_create_a_wider_key(restricted, request_body, param):
    _parent, plaintext = restricted
    before = ApiKey.objects.count()
    response = _client(plaintext).post(KEYS_URL, request_body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param
    assert ApiKey.objects.count() == before


def test_a_key_may_create_a_narrower_key(restricted):
    _parent, plaintext = restricted
    response = _client(plaintext).post(
        KEYS_URL,
        {
            "rpm_limit": 1,
            "tpm_limit": 10,
            "expires_at": (timezone.now() + timedelta(minutes=5)).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert (response.json()["rpm_limit"], response.json()["tpm_limit"]) == (1, 10)


def test_a_member_key_cannot_create_keys(bob_key):
    response = _client(bob_key).post(KEYS_URL, {"name": "mine"}, format="json")
    assert response.status_code == 403


def test_a_child_stops_working_when_its_parent_is_revoked(restricted, alice):
    parent, plaintext = restricted
    child_key = _client(plaintext).post(KEYS_URL, {}, format="json").json()["key"]
    grandchild_key = _client(child_key).post(KEYS_URL, {}, format="json").json()["key"]
    assert principal_for_key(grandchild_key).key_prefix

    services.api_key_revoke(api_key=parent, actor=alice)

    for key in (child_key, grandchild_key):
        with pytest.raises(ApiKeyRevoked):
            principal_for_key(key)
    assert ApiKey.objects.filter(parent__isnull=False, revoked_at__isnull=True).count() == 0


def test_a_child_stops_working_even_when_its_parent_was_revoked_behind_its_back(
    restricted, org_a, alice, bob
):
    """Removing a member revokes their keys in bulk; a child they made for someone else
    is refused at lookup all the same."""
    _parent, plaintext = restricted
    response = _client(plaintext).post(KEYS_URL, {"user": "bob"}, format="json")
    bob_child = response.json()["key"]
    ApiKey.objects.filter(name="restricted").update(revoked_at=timezone.now())
    principal_cache_forget()

    with pytest.raises(ApiKeyRevoked):
        principal_for_key(bob_child)


def test_a_child_never_outlives_its_parents_expiry(restricted):
    parent, plaintext = restricted
    child_key = _client(plaintext).post(KEYS_URL, {}, format="json").json()["key"]
    ApiKey.objects.filter(pk=parent.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # Even a child whose own row says otherwise.
    ApiKey.objects.filter(parent=parent).update(expires_at=None)
    principal_cache_forget()

    with pytest.raises(ApiKeyExpired):
        principal_for_key(child_key)


def test_rotating_a_parent_keeps_its_children_working(restricted, alice):
    parent, plaintext = restricted
    child_key = _client(plaintext).post(KEYS_URL, {}, format="json").json()["key"]
    new_parent, _ = services.api_key_rotate(api_key=parent, actor=alice)

    assert principal_for_key(child_key).key_prefix
    assert ApiKey.objects.get(prefix=principal_for_key(child_key).key_prefix).parent == new_parent


def test_a_child_spends_from_its_parents_key_budget(org_a, alice, restricted):
    parent, plaintext = restricted
    billing_services.budget_set(organization=org_a, api_key=parent, monthly_limit_micros=0)
    budget_cache_forget()
    budget_counters_forget()
    child = ApiKey.objects.get(pk=_client(plaintext).post(KEYS_URL, {}, format="json").json()["id"])

    with pytest.raises(BudgetExceeded):
        budget_reserve(
            organization_id=org_a.pk, user_id=alice.pk, api_key_id=child.pk, estimate_micros=1
        )


@pytest.mark.parametrize("field", ["rpm_limit", "tpm_limit"])
def test_a_limit_beyond_the_columns_range_is_a_400(alice_client, field):
    response = alice_client.post(KEYS_URL, {field: 2**31}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == field


@pytest.mark.parametrize("value", [2**31, -1])
def test_services_refuse_limits_beyond_the_columns_range(org_a, alice, value):
    from common.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        services.api_key_create(organization=org_a, user=alice, rpm_limit=value, actor=alice)
    with pytest.raises(InvalidRequest):
        services.role_limit_set(
            organization=org_a, role="basic", rpm_limit=None, tpm_limit=value, actor=alice
        )
