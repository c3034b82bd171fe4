"""Cost and tokens by organization (a bounded label), time to first token, cache savings and
budget refusals in /metrics."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from prometheus_client import REGISTRY

from billing import services as billing_services
from billing import usage
from billing.models import Price, UsageEvent
from proxy import gateway, metrics

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "How many legs does a spider have?"}]


@pytest.fixture(autouse=True)
def _priced_offline(settings):
    settings.OPENAI_API_KEY = ""  # the offline fake provider answers
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    usage.memory_buffer.clear()
    metrics.organization_labels_forget()
    Price.objects.create(
        model_pattern="gpt-4o",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=2_500_000,
        output_per_mtok_micros=10_000_000,
    )
    metrics.known_models.refresh()  # gpt-4o is priced: its own model label
    yield
    usage.memory_buffer.clear()
    metrics.organization_labels_forget()


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def post_chat(key: str, body: dict, **headers):
    async def run():
        response = await AsyncClient().post(
            "/v1/chat/completions",
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}", **headers},
        )
        if response.streaming:
            content = b"".join([part async for part in response.streaming_content])
        else:
            content = response.content
        await asyncio.gather(*list(gateway._background))  # accounting runs after the answer
        return response, content

    return async_to_sync(run)()


def test_cost_and_tokens_are_counted_by_organization(alice_key):
    labels = {"organization": "org-a", "model": "gpt-4o"}
    before = {
        "cost": sample("synthlang_cost_micros_total", **labels),
        "prompt": sample(
            "synthlang_organization_tokens_total", organization="org-a", direction="prompt"
        ),
    }
    response, content = post_chat(
        alice_key, {"model": "gpt-4o", "messages": HELLO}, **{"x-synthlang-cache": "off"}
    )
    usage.usage_flush_run()
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert event.cost_micros > 0
    assert sample("synthlang_cost_micros_total", **labels) == before["cost"] + event.cost_micros
    assert (
        sample("synthlang_organization_tokens_total", organization="org-a", direction="prompt")
        == before["prompt"] + json.loads(content)["usage"]["prompt_tokens"]
    )


def test_organizations_not_chosen_count_as_other(alice_key, settings):
    settings.METRICS_ORGANIZATIONS = frozenset({"org-b"})
    before = {
        slug: sample("synthlang_cost_micros_total", organization=slug, model="gpt-4o")
        for slug in ("other", "org-a")
    }
    post_chat(alice_key, {"model": "gpt-4o", "messages": HELLO}, **{"x-synthlang-cache": "off"})
    after = {
        slug: sample("synthlang_cost_micros_total", organization=slug, model="gpt-4o")
        for slug in ("other", "org-a")
    }
    assert after["other"] > before["other"]
    assert after["org-a"] == before["org-a"]


def test_without_a_list_only_the_first_organizations_get_a_label(settings):
    settings.METRICS_ORGANIZATIONS = frozenset()
    settings.METRICS_ORGANIZATIONS_MAX = 2
    assert [metrics.organization_label(slug) for slug in ("a", "b", "c", "a", "d")] == [
        "a",
        "b",
        "other",
        "a",
        "other",
    ]


def test_a_stream_observes_its_time_to_first_token(alice_key):
    labels = {"endpoint": "chat.completions", "cache": "off"}
    before = sample("synthlang_time_to_first_token_seconds_count", **labels)
    response, content = post_chat(
        alice_key,
        {"model": "gpt-4o", "messages": HELLO, "stream": True},
        **{"x-synthlang-cache": "off"},
    )
    assert response.status_code == 200 and content.endswith(b"data: [DONE]\n\n")
    assert sample("synthlang_time_to_first_token_seconds_count", **labels) == before + 1
    assert sample("synthlang_time_to_first_token_seconds_sum", **labels) > 0


def test_a_cache_hit_counts_what_it_avoided(alice_key):
    question = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Capital of Peru?"}]}
    post_chat(alice_key, question)
    before = sample("synthlang_cache_avoided_cost_micros_total", organization="org-a")
    response, _content = post_chat(alice_key, question)
    assert response["x-synthlang-cache"] == "hit"
    assert sample("synthlang_cache_avoided_cost_micros_total", organization="org-a") > before


def test_a_budget_refusal_is_counted_by_its_scope(org_a, alice_key):
    billing_services.budget_set(organization=org_a, monthly_limit_micros=1, actor=None)
    before = sample("synthlang_budget_refusals_total", scope="organization")
    response, content = post_chat(
        alice_key, {"model": "gpt-4o", "messages": HELLO}, **{"x-synthlang-cache": "off"}
    )
    assert response.status_code == 429
    assert json.loads(content)["error"]["code"] == "insufficient_quota"
    assert sample("synthlang_budget_refusals_total", scope="organization") == before + 1
