"""Budgets cannot be bypassed: an unpriced model is refused under a hard budget (unless a
non-zero fallback price is configured), and an answer without usage is still counted."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from aiohttp import web
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from accounts import services as accounts_services
from billing import budgets, services, usage
from billing.models import Price, UsageEvent
from billing.selectors import budget_cache_forget, price_cache_forget
from proxy import gateway
from proxy.models import Deployment, ModelRoute
from proxy.providers import http

DOLLAR = 1_000_000


@pytest.fixture(autouse=True)
def _gpt_4o_price(transactional_db):
    # A transactional test starts from empty tables: the seeded list prices are gone.
    Price.objects.get_or_create(
        model_pattern="gpt-4o",
        effective_from=datetime(2024, 1, 1, tzinfo=UTC),
        defaults={"input_per_mtok_micros": 2_500_000, "output_per_mtok_micros": 10_000_000},
    )
    price_cache_forget()


@pytest.fixture(autouse=True)
def _clean(settings):
    settings.OPENAI_API_KEY = ""  # the offline fake provider answers unrouted models
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    usage.memory_buffer.clear()
    budgets.budget_counters_forget()
    budget_cache_forget()
    price_cache_forget()
    yield
    usage.memory_buffer.clear()
    budgets.budget_counters_forget()


def _chat(key: str, model: str):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hello"}]})

    async def post():
        response = await AsyncClient().post(
            "/v1/chat/completions",
            data=body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}", "x-synthlang-cache": "off"},
        )
        await asyncio.gather(*list(gateway._background))
        return response

    return async_to_sync(post)()


UNPRICED = ["gpt-4-0125-preview", "o1-pro", "my-own-finetune"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("limit", [0, 10 * DOLLAR])
@pytest.mark.parametrize("model", UNPRICED)
def test_an_unpriced_model_is_refused_under_a_hard_budget(org_a, alice_key, model, limit):
    services.budget_set(organization=org_a, monthly_limit_micros=limit)
    response = _chat(alice_key, model)

    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_priced", "model")


@pytest.mark.django_db(transaction=True)
def test_a_priced_model_under_a_zero_budget_is_refused_as_over_quota(org_a, alice_key):
    services.budget_set(organization=org_a, monthly_limit_micros=0)
    response = _chat(alice_key, "gpt-4o")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "insufficient_quota"


@pytest.mark.django_db(transaction=True)
def test_a_configured_fallback_price_admits_and_charges_an_unpriced_model(
    org_a, alice_key, settings
):
    settings.UNKNOWN_MODEL_PRICE_PER_MTOK_USD = "5,15"
    budget = services.budget_set(organization=org_a, monthly_limit_micros=10 * DOLLAR)
    response = _chat(alice_key, "o1-pro")

    assert response.status_code == 200, response.content
    assert budgets.budget_counter_value(budget_id=budget.pk) > 0


@pytest.mark.django_db(transaction=True)
def test_without_a_hard_budget_an_unpriced_model_is_served(org_a, alice_key):
    services.budget_set(organization=org_a, monthly_limit_micros=None, soft_limit_micros=DOLLAR)
    assert _chat(alice_key, "o1-pro").status_code == 200
    services.budget_set(organization=org_a, monthly_limit_micros=None, soft_limit_micros=None)
    assert _chat(alice_key, "my-own-finetune").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_routed_alias_is_held_at_its_deployments_price(org_a, alice_key):
    """An alias has no price row of its own; its upstream model does."""
    route = ModelRoute.objects.create(organization=org_a, public_name="smart")
    Deployment.objects.create(route=route, provider="fake", upstream_model="gpt-4o")
    services.budget_set(organization=org_a, monthly_limit_micros=0)
    response = _chat(alice_key, "smart")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "insufficient_quota"


@pytest.mark.django_db(transaction=True)
def test_an_answer_without_usage_is_counted_by_the_tokenizer_and_flagged(org_a, alice_key):
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Four words of answer."},
            }
        ],
    }

    async def handler(request):
        return web.json_response(answer)

    async def scenario():
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"
        await asyncio.to_thread(
            accounts_services.provider_credential_set,
            organization=org_a,
            provider="openai",
            key="sk-org-upstream-0001",
            base_url=base_url,
            actor=None,
        )
        budget = await asyncio.to_thread(
            services.budget_set, organization=org_a, monthly_limit_micros=10 * DOLLAR
        )
        try:
            response = await AsyncClient().post(
                "/v1/chat/completions",
                data=json.dumps(
                    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
                ),
                content_type="application/json",
                headers={"Authorization": f"Bearer {alice_key}", "x-synthlang-cache": "off"},
            )
            await asyncio.gather(*list(gateway._background))
            return response, budget
        finally:
            await http.session_for(base_url).close()
            await runner.cleanup()

    response, budget = async_to_sync(scenario)()
    assert response.status_code == 200, response.content
    usage.usage_flush_run()
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert event.usage_estimated
    assert event.prompt_tokens > 0 and event.completion_tokens == 5
    assert event.cost_micros > 0
    assert budgets.budget_counter_value(budget_id=budget.pk) > 0
