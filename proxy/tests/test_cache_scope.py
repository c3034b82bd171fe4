"""Sharing cached answers across organizations: decided by platform staff, only over the same
platform upstream, never with answers from an organization's own provider key."""

from __future__ import annotations

import asyncio
import os

import pytest
from django.test import Client

from accounts import services
from accounts.models import Organization
from accounts.selectors import Principal
from common import redis as shared_redis
from common.errors import PermissionDenied
from proxy import response_cache, routing
from proxy.response_cache import store
from proxy.response_cache.scope import shared_scope_for
from proxy.tests.test_cache_tiers import answer, settle

pytestmark = pytest.mark.django_db(transaction=True)
REDIS_URL = os.environ.get("REDIS_URL", "")
QUESTION = "What is the maximum dose of ibuprofen per day?"


@pytest.fixture
def cache_mode(settings):
    settings.ENABLE_CACHE = True
    settings.CACHE_TYPE = "redis" if REDIS_URL else "memory"
    settings.ROUTE_CACHE_SECONDS = 0
    store.memory_forget()
    routing.route_cache_forget()
    shared_redis._async_clients.clear()
    if REDIS_URL:
        shared_redis.sync_redis().flushdb()
    yield
    store.memory_forget()
    routing.route_cache_forget()
    shared_redis._async_clients.clear()


@pytest.fixture
def both_on_the_platform_scope(org_a, org_b):
    for organization in (org_a, org_b):
        services.organization_update_settings(
            organization=organization, actor=None, cache_scope="platform"
        )


def principal_of(organization, key_id: int) -> Principal:
    return Principal(
        key_id=key_id,
        key_prefix="sk-syn-test",
        organization_id=organization.pk,
        organization_slug=organization.slug,
        user_id=1,
        username="tester",
        role="admin",
        expires_at=None,
        cache_scope=Organization.objects.get(pk=organization.pk).cache_scope,
    )


def body(question: str) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": question}]}


def store_then_ask(writer: Principal, reader: Principal, asked: str = QUESTION):
    async def scenario():
        lookup = await response_cache.cache_lookup(
            principal=writer, body=body(QUESTION), control=""
        )
        assert lookup.status == "miss"
        await response_cache.cache_store(lookup, response=answer("B's answer."))
        await settle()
        found = await response_cache.cache_lookup(principal=reader, body=body(asked), control="")
        await settle()
        return lookup, found

    return asyncio.run(scenario())


def test_organizations_on_the_same_platform_upstream_share_answers(
    cache_mode, org_a, org_b, both_on_the_platform_scope
):
    stored, found = store_then_ask(principal_of(org_b, 2), principal_of(org_a, 1))
    assert stored.context.scope.startswith("platform:") and stored.context.shared
    assert stored.context.organization_id is None  # nobody's to clear
    assert (found.status, found.tier) == ("hit", "exact")


def test_an_answer_from_an_organizations_own_key_never_reaches_another_tenant(
    cache_mode, org_a, org_b, both_on_the_platform_scope
):
    # B brings its own upstream (which B controls): its answers stay in B's own scope.
    services.provider_credential_set(
        organization=org_b,
        provider="openai",
        key="sk-b-own-key-0001",
        base_url="https://b-controls-this.example/v1",
        actor=None,
    )
    stored, exact = store_then_ask(principal_of(org_b, 2), principal_of(org_a, 1))

    reader = principal_of(org_a, 1)

    async def reworded_by_a():
        return await response_cache.cache_lookup(
            principal=reader,
            body=body("What's the maximum daily dose of ibuprofen?"),
            control="",
        )

    reworded = asyncio.run(reworded_by_a())
    assert stored.context.scope == f"org:{org_b.pk}" and not stored.context.shared
    assert stored.context.organization_id == org_b.pk
    assert exact.status == "miss" and reworded.status == "miss"


def test_a_route_with_any_organization_owned_deployment_is_not_shared(org_b):
    platform = routing.DeploymentPlan(provider="openai", upstream_model="gpt-4o", credential_id=3)
    own = routing.DeploymentPlan(
        provider="openai", upstream_model="gpt-4o", credential_id=9, organization_owned=True
    )
    assert shared_scope_for(routing.RoutePlan("gpt-4o", (platform,), True)) is not None
    assert shared_scope_for(routing.RoutePlan("gpt-4o", (platform, own), True)) is None


def test_another_platform_credential_or_model_is_another_shared_scope():
    def scope(**changes):
        plan = routing.DeploymentPlan(
            **{"provider": "openai", "upstream_model": "gpt-4o", "credential_id": 3, **changes}
        )
        return shared_scope_for(routing.RoutePlan("gpt-4o", (plan,), True))

    assert scope() == scope()
    assert scope() != scope(credential_id=4)
    assert scope() != scope(upstream_model="gpt-4o-mini")
    assert scope() != scope(base_url="https://other.example/v1")


def test_an_organization_admin_cannot_share_the_cache_across_tenants(org_a, alice):
    with pytest.raises(PermissionDenied):
        services.organization_update_settings(
            organization=org_a, actor=alice, cache_scope="platform"
        )
    services.organization_update_settings(organization=org_a, actor=alice, cache_scope="key")
    assert Organization.objects.get(pk=org_a.pk).cache_scope == "key"


def _organization_form(client, organization):
    response = client.get(f"/admin/accounts/organization/{organization.pk}/change/")
    assert response.status_code == 200
    return response.context["adminform"].form


def _post_scope(client, organization, scope):
    return client.post(
        f"/admin/accounts/organization/{organization.pk}/change/",
        {
            "name": organization.name,
            "rpm_limit": "",
            "tpm_limit": "",
            "allowed_models": "",
            "compression_level": "",
            "compression_roles": ["system", "user"],
            "cache_enabled": "on",
            "cache_scope": scope,
            "prompt_cache_breakpoints": "on",
            "prompt_cache_key_scope": "organization",
        },
    )


def test_the_admin_offers_the_platform_scope_to_platform_staff_only(
    org_a, alice, django_user_model
):
    admin_client = Client()
    admin_client.force_login(alice)
    choices = [
        value for value, _ in _organization_form(admin_client, org_a).fields["cache_scope"].choices
    ]
    assert "platform" not in choices
    response = _post_scope(admin_client, org_a, "platform")
    assert response.status_code == 200  # the form is shown again with the error
    assert Organization.objects.get(pk=org_a.pk).cache_scope == "organization"

    root = django_user_model.objects.create_superuser("root-scope", "root@example.com", "pw")
    staff_client = Client()
    staff_client.force_login(root)
    assert _post_scope(staff_client, org_a, "platform").status_code == 302
    assert Organization.objects.get(pk=org_a.pk).cache_scope == "platform"
    # Once staff shared it, the organization's admin may keep or leave the shared scope.
    assert _post_scope(admin_client, org_a, "organization").status_code == 302
    assert Organization.objects.get(pk=org_a.pk).cache_scope == "organization"
