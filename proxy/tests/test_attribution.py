"""A request's attribution (OpenAI's `user`, `metadata`, the x-synthlang-tags header) on its
usage event, its cost told in the answer, and bad values refused in OpenAI's format."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from billing import usage
from billing.models import Price, UsageEvent
from proxy import attribution, gateway


@pytest.fixture(autouse=True)
def _offline(settings):
    settings.OPENAI_API_KEY = ""  # the offline fake provider answers
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    usage.memory_buffer.clear()
    yield
    usage.memory_buffer.clear()


def _post(key: str, body: dict, **headers):
    async def request():
        response = await AsyncClient().post(
            "/v1/chat/completions",
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}", "x-synthlang-cache": "off", **headers},
        )
        await asyncio.gather(*list(gateway._background))  # accounting runs after the response
        return response

    return async_to_sync(request)()


CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


@pytest.mark.django_db(transaction=True)
def test_user_metadata_and_tags_are_recorded_on_the_usage_event(alice_key):
    Price.objects.create(
        model_pattern="gpt-4o",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=2_500_000,
        output_per_mtok_micros=10_000_000,
    )
    response = _post(
        alice_key,
        {**CHAT, "user": "customer-7", "metadata": {"feature": "search", "team": "growth"}},
        **{"x-synthlang-tags": "team-growth, feature:search, team-growth"},
    )
    usage.usage_flush_run()
    assert response.status_code == 200
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert event.end_user == "customer-7"
    assert event.metadata == {"feature": "search", "team": "growth"}
    assert event.tags == ",team-growth,feature:search,"
    # The answer said what the flush billed.
    assert event.cost_micros > 0
    assert response["x-synthlang-cost-usd"] == f"0.{event.cost_micros:06d}"


def test_metadata_goes_upstream_only_with_store():
    body = {**CHAT, "metadata": {"team": "growth"}}
    assert "metadata" not in attribution.without_recorded_metadata(body)
    stored = {**body, "store": True}
    assert attribution.without_recorded_metadata(stored) == stored


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("body", "headers", "param"),
    [
        ({**CHAT, "user": 42}, {}, "user"),
        ({**CHAT, "user": "x" * 257}, {}, "user"),
        ({**CHAT, "metadata": ["not", "an", "object"]}, {}, "metadata"),
        ({**CHAT, "metadata": {"n": 1}}, {}, "metadata"),
        ({**CHAT, "metadata": {f"k{i}": "v" for i in range(17)}}, {}, "metadata"),
        (CHAT, {"x-synthlang-tags": "has space"}, "x-synthlang-tags"),
        (CHAT, {"x-synthlang-tags": ",".join(f"t{i}" for i in range(11))}, "x-synthlang-tags"),
    ],
)
def test_bad_attribution_is_a_400_naming_the_field(alice_key, body, headers, param):
    response = _post(alice_key, body, **headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
