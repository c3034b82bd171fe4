"""``GET /v1/models``: the default provider's list is fetched once per cache period, and an
upstream that cannot list its models still leaves the routed ones."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from accounts.selectors import principal_for_key
from proxy import models_catalog, providers
from proxy.models import ModelRoute
from proxy.providers.base import Target, classify_status
from proxy.providers.fake import FAKE_MODELS, model_list

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def upstream_lists(settings, monkeypatch) -> list[str]:
    """The default provider's list calls, by upstream model of the target."""
    settings.OPENAI_API_KEY = ""  # the default provider is the offline fake
    calls: list[str] = []

    async def list_models(target: Target) -> list[dict]:
        calls.append(target.upstream_model)
        return model_list()

    monkeypatch.setattr(providers.PROVIDERS["fake"], "list_models", list_models)
    return calls


@pytest.mark.parametrize(("cache_seconds", "expected_calls"), [(300, 1), (0, 2)])
def test_the_default_providers_list_is_fetched_once_per_cache_period(
    settings, upstream_lists, alice_key, cache_seconds, expected_calls
):
    settings.MODELS_CACHE_SECONDS = cache_seconds
    principal = principal_for_key(alice_key)

    async def list_twice():
        return await models_catalog.models_for(principal), await models_catalog.models_for(
            principal
        )

    first, second = asyncio.run(list_twice())

    assert len(upstream_lists) == expected_calls
    assert [model["id"] for model in first] == sorted(FAKE_MODELS)
    assert second == first


def test_an_upstream_that_cannot_list_still_leaves_the_routed_models(
    settings, monkeypatch, org_a, alice_key
):
    settings.OPENAI_API_KEY = ""
    ModelRoute.objects.create(organization=org_a, public_name="team-smart")
    attempts: list[str] = []

    async def unavailable(target: Target) -> list[dict]:
        attempts.append(target.upstream_model)
        raise classify_status(503, {"error": {"message": "overloaded"}}, None)

    monkeypatch.setattr(providers.PROVIDERS["fake"], "list_models", unavailable)

    async def get_models():
        return await AsyncClient().get(
            "/v1/models", headers={"Authorization": f"Bearer {alice_key}"}
        )

    response = async_to_sync(get_models)()

    assert len(attempts) == 1  # the upstream was asked, and failed
    assert response.status_code == 200
    assert response.json()["object"] == "list"
    assert [model["id"] for model in response.json()["data"]] == ["team-smart"]


def test_a_catalog_without_the_upstreams_list_is_kept_only_briefly(
    settings, monkeypatch, upstream_lists, alice_key
):
    """After an upstream blip, /v1/models lists the upstream's models again within
    seconds, not after the whole cache period."""
    settings.MODELS_CACHE_SECONDS = 300
    principal = principal_for_key(alice_key)
    working_list_models = providers.PROVIDERS["fake"].list_models
    clock = [1000.0]
    monkeypatch.setattr("common.ttlcache.monotonic", lambda: clock[0])  # this cache only

    async def unavailable(target: Target) -> list[dict]:
        raise classify_status(503, {"error": {"message": "overloaded"}}, None)

    def listed() -> list[str]:
        return [model["id"] for model in asyncio.run(models_catalog.models_for(principal))]

    monkeypatch.setattr(providers.PROVIDERS["fake"], "list_models", unavailable)
    assert listed() == []
    monkeypatch.setattr(providers.PROVIDERS["fake"], "list_models", working_list_models)
    clock[0] += models_catalog.INCOMPLETE_CATALOG_SECONDS - 1
    assert listed() == []  # still the incomplete catalog: no upstream call per request
    assert upstream_lists == []
    clock[0] += 2
    assert listed() == sorted(FAKE_MODELS)
    # A complete catalog stays for the whole cache period.
    clock[0] += 200
    assert listed() == sorted(FAKE_MODELS)
    assert len(upstream_lists) == 1
