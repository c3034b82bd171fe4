"""A provider's built-in tools billed per call beside the tokens, on both pass-throughs:
OpenAI's Responses API (a ``web_search_call`` output item) and Anthropic's Messages API
(``usage.server_tool_use.web_search_requests``), with the official SDKs against a real
proxy and the fake upstream "running" the tool."""

from __future__ import annotations

from datetime import UTC, datetime

import anthropic
import openai
import pytest

from billing.models import Price
from billing.pricing import tokens_cost_micros, usage_tokens
from proxy.tests.test_prompt_cache_e2e import (  # noqa: F401 - fixtures
    GPT_4O,
    SONNET,
    caching_proxy,
    prices,
    route,
    wait_for_usage,
)
from proxy.tests.test_responses_native_e2e import make_route

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

HEADERS = {"x-synthlang-cache": "off"}
SEARCH_FEE = 10_000  # $10 per 1000 calls, Anthropic's list fee for web search
ANTHROPIC_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}


@pytest.fixture
def search_fee(live_db):
    Price.objects.create(
        model_pattern="tool:web_search",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=0,
        output_per_mtok_micros=0,
        per_unit_micros=SEARCH_FEE,
    )


@pytest.fixture
def openai_client(caching_proxy, fake_upstream, org_a, alice_key, prices, search_fee):  # noqa: F811
    fake_upstream.reset()
    make_route(org_a, "gpt-native", ("openai", "gpt-4o", fake_upstream.v1, None))
    return openai.OpenAI(base_url=f"{caching_proxy}/v1", api_key=alice_key, max_retries=0)


@pytest.fixture
def claude(caching_proxy, fake_upstream, org_a, alice_key, prices, search_fee):  # noqa: F811
    fake_upstream.reset()
    route(org_a, "claude-native", "anthropic", "claude-sonnet-4-5", fake_upstream.v1)
    return anthropic.Anthropic(base_url=caching_proxy, api_key=alice_key, max_retries=0)


def test_a_responses_web_search_call_is_billed_per_call_and_told_to_the_client(openai_client):
    raw = openai_client.responses.with_raw_response.create(
        model="gpt-native",
        input="What happened in Lisbon today?",
        tools=[{"type": "web_search"}],
        extra_headers=HEADERS,
    )
    response = raw.parse()
    assert [item.type for item in response.output] == ["web_search_call", "message"]

    event = wait_for_usage(raw.headers["x-request-id"])
    tokens = tokens_cost_micros(price=GPT_4O, tokens=usage_tokens(response.usage.model_dump()))
    assert event.tool_calls == {"web_search": 1}
    assert event.cost_micros == tokens + SEARCH_FEE
    assert raw.headers["x-synthlang-cost-usd"] == f"{(tokens + SEARCH_FEE) / 1e6:.6f}"


def test_a_streamed_responses_web_search_call_is_billed_from_the_final_response(openai_client):
    raw = openai_client.responses.with_raw_response.create(
        model="gpt-native",
        input="Search the news about Porto",
        tools=[{"type": "web_search"}],
        stream=True,
        extra_headers=HEADERS,
    )
    final = [event for event in raw.parse() if event.type == "response.completed"][-1].response
    assert final.output[0].type == "web_search_call"

    event = wait_for_usage(raw.headers["x-request-id"])
    tokens = tokens_cost_micros(price=GPT_4O, tokens=usage_tokens(final.usage.model_dump()))
    assert event.tool_calls == {"web_search": 1} and event.stream is True
    assert event.cost_micros == tokens + SEARCH_FEE


def test_a_function_tool_costs_no_call_fee(openai_client):
    weather = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    raw = openai_client.responses.with_raw_response.create(
        model="gpt-native", input="Weather in Faro?", tools=[weather], extra_headers=HEADERS
    )
    assert raw.parse().output[0].type == "function_call"
    assert wait_for_usage(raw.headers["x-request-id"]).tool_calls == {}


@pytest.mark.parametrize("stream", [False, True])
def test_anthropics_web_search_requests_are_billed_per_call(claude, stream):
    question = [{"role": "user", "content": "Any news from Madeira?"}]
    if stream:
        with claude.messages.stream(
            model="claude-native",
            max_tokens=100,
            messages=question,
            tools=[ANTHROPIC_SEARCH],
            extra_headers=HEADERS,
        ) as events:
            message = events.get_final_message()
            request_id = events.response.headers["x-request-id"]
    else:
        raw = claude.messages.with_raw_response.create(
            model="claude-native",
            max_tokens=100,
            messages=question,
            tools=[ANTHROPIC_SEARCH],
            extra_headers=HEADERS,
        )
        message, request_id = raw.parse(), raw.headers["x-request-id"]
    assert message.usage.server_tool_use.web_search_requests == 1

    event = wait_for_usage(request_id)
    tokens = tokens_cost_micros(price=SONNET, tokens=usage_tokens(message.usage.model_dump()))
    assert event.tool_calls == {"web_search": 1}
    assert event.cost_micros == tokens + SEARCH_FEE
