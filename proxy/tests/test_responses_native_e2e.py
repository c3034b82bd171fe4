"""Responses requests to an OpenAI route are passed through to its ``/responses``, with the
official openai SDK as the client and the fake upstream speaking the Responses API."""

from __future__ import annotations

import json

import openai
import pytest

from accounts import services
from billing.pricing import tokens_cost_micros, usage_tokens
from billing.services import budget_set
from proxy.models import Deployment, ModelRoute
from proxy.tests.conftest import UPSTREAM_KEY
from proxy.tests.test_prompt_cache_e2e import (  # noqa: F401 - fixtures
    GPT_4O,
    caching_proxy,
    prices,
    wait_for_usage,
)
from proxy.tests.test_responses_e2e import WEATHER

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

HEADERS = {"x-synthlang-cache": "off"}


def make_route(organization, public_name: str, *deployments: tuple[str, str, str, dict | None]):
    """A route of (provider, upstream model, base URL, key options) deployments, in
    priority order."""
    route = ModelRoute.objects.create(organization=organization, public_name=public_name)
    for priority, (provider, upstream_model, base_url, options) in enumerate(deployments):
        credential = services.provider_credential_set(
            organization=organization,
            provider=provider,
            key=UPSTREAM_KEY,
            base_url=base_url,
            name=f"fake-{provider}-{priority}-{public_name}",
            options=options,
            actor=None,
        )
        Deployment.objects.create(
            route=route,
            provider=provider,
            credential=credential,
            upstream_model=upstream_model,
            priority=priority,
        )
    return route


@pytest.fixture
def client(caching_proxy, fake_upstream, org_a, alice_key, prices):  # noqa: F811
    fake_upstream.reset()
    make_route(org_a, "gpt-native", ("openai", "gpt-4o", fake_upstream.v1, None))
    return openai.OpenAI(base_url=f"{caching_proxy}/v1", api_key=alice_key, max_retries=0)


def _sent(fake_upstream, model: str = "gpt-4o") -> dict:
    return fake_upstream.stats()["last_bodies"][model]


def _requests(fake_upstream, path: str, model: str) -> int:
    return fake_upstream.stats()["requests"].get(f"{path} {model}", 0)


def test_a_response_is_passed_through_with_store_off_upstream_and_accounted(client, fake_upstream):
    raw = client.responses.with_raw_response.create(
        model="gpt-native",
        input="Say hello to Ada",
        instructions="Be brief.",
        metadata={"team": "search"},
        extra_body={"top_logprobs": 0},  # a field the proxy does not act on: kept
        extra_headers=HEADERS,
    )
    response = raw.parse()
    assert _requests(fake_upstream, "/v1/responses", "gpt-4o") == 1
    assert _sent(fake_upstream) == {
        "model": "gpt-4o",
        "input": "Say hello to Ada",
        "instructions": "Be brief.",
        "metadata": {"team": "search"},
        "top_logprobs": 0,
        "store": False,
    }
    assert response.id.startswith("resp_") and response.store is True
    assert "Ada" in response.output_text and response.model == "gpt-4o"

    event = wait_for_usage(raw.headers["x-request-id"])
    assert (event.endpoint, event.provider, event.stream) == ("responses", "openai", False)
    assert event.usage_estimated is False and event.metadata == {"team": "search"}
    assert event.prompt_tokens == response.usage.input_tokens > 0
    assert event.completion_tokens == response.usage.output_tokens > 0
    tokens = usage_tokens(response.usage.model_dump())
    assert event.cost_micros == tokens_cost_micros(price=GPT_4O, tokens=tokens) > 0
    assert raw.headers["x-synthlang-cost-usd"]

    # The proxy's store answers GET and the next turn, whose history it sends upstream.
    assert client.responses.retrieve(response.id).output_text == response.output_text
    follow_up = client.responses.create(
        model="gpt-native",
        input="And to Grace",
        previous_response_id=response.id,
        extra_headers=HEADERS,
    )
    sent = _sent(fake_upstream)
    assert "previous_response_id" not in sent and sent["store"] is False
    assert sent["input"] == [
        {"type": "message", "role": "user", "content": "Say hello to Ada"},
        {"type": "message", "role": "assistant", "content": response.output_text},
        {"type": "message", "role": "user", "content": "And to Grace"},
    ]
    assert follow_up.previous_response_id == response.id
    assert follow_up.usage.input_tokens > response.usage.input_tokens


def test_a_passed_through_stream_relays_the_events_and_is_stored_and_accounted(
    client, fake_upstream
):
    with client.responses.stream(
        model="gpt-native", input="Stream the native answer please", extra_headers=HEADERS
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
        request_id = stream._response.headers["x-request-id"]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert "Stream the native answer please" in final.output_text
    assert _sent(fake_upstream)["stream"] is True and _sent(fake_upstream)["store"] is False
    assert client.responses.retrieve(final.id).output_text == final.output_text

    event = wait_for_usage(request_id)
    assert (event.endpoint, event.provider, event.stream) == ("responses", "openai", True)
    assert event.usage_estimated is False
    assert event.completion_tokens == final.usage.output_tokens > 0
    assert event.prompt_tokens == final.usage.input_tokens > 0


def test_a_tool_call_passes_through_and_its_output_continues_the_conversation(
    client, fake_upstream
):
    first = client.responses.create(
        model="gpt-native",
        input="What is the weather in Paris?",
        tools=[WEATHER],
        extra_headers=HEADERS,
    )
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert _sent(fake_upstream)["tools"] == [WEATHER]
    json.loads(call.arguments)

    second = client.responses.create(
        model="gpt-native",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21C"}],
        tools=[WEATHER],
        tool_choice="none",
        extra_headers=HEADERS,
    )
    sent = _sent(fake_upstream)["input"]
    assert sent[1] == {
        "type": "function_call",
        "call_id": call.call_id,
        "name": "get_weather",
        "arguments": call.arguments,
    }
    assert sent[2]["type"] == "function_call_output" and sent[2]["output"] == "Sunny, 21C"
    assert second.output_text

    with client.responses.stream(
        model="gpt-native", input="Weather in Rome?", tools=[WEATHER], extra_headers=HEADERS
    ) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert streamed.output[0].type == "function_call"


def test_a_failing_upstream_is_retried_then_falls_back_to_a_translated_deployment(
    caching_proxy,  # noqa: F811
    fake_upstream,
    org_a,
    alice_key,
    prices,  # noqa: F811
):
    fake_upstream.reset()
    v1 = fake_upstream.v1
    make_route(org_a, "gpt-flaky", ("openai", "fake-flaky-1", v1, None))
    make_route(
        org_a,
        "gpt-with-fallback",
        ("openai", "fake-fail-500", v1, None),
        ("anthropic", "claude-sonnet-4-5", v1, None),
    )
    client = openai.OpenAI(base_url=f"{caching_proxy}/v1", api_key=alice_key, max_retries=0)

    retried = client.responses.create(model="gpt-flaky", input="Try again", extra_headers=HEADERS)
    assert "Try again" in retried.output_text
    assert _requests(fake_upstream, "/v1/responses", "fake-flaky-1") == 2

    raw = client.responses.with_raw_response.create(
        model="gpt-with-fallback", input="Fall back please", extra_headers=HEADERS
    )
    response = raw.parse()
    assert "Fall back please" in response.output_text and response.status == "completed"
    assert _requests(fake_upstream, "/v1/responses", "fake-fail-500") >= 2  # retried first
    assert _requests(fake_upstream, "/v1/messages", "claude-sonnet-4-5") == 1
    event = wait_for_usage(raw.headers["x-request-id"])
    assert (event.endpoint, event.provider, event.status_code) == ("responses", "anthropic", 200)
    assert event.completion_tokens == response.usage.output_tokens > 0
    assert client.responses.retrieve(response.id).output_text == response.output_text

    with client.responses.stream(
        model="gpt-with-fallback", input="Stream the fallback", extra_headers=HEADERS
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[-1] == "response.completed" and "Stream the fallback" in final.output_text
    assert final.id.startswith("resp_")


def test_a_route_marked_without_the_responses_api_is_translated(
    caching_proxy,  # noqa: F811
    fake_upstream,
    org_a,
    alice_key,
    prices,  # noqa: F811
):
    fake_upstream.reset()
    make_route(org_a, "vllm", ("openai", "gpt-4o", fake_upstream.v1, {"responses_api": False}))
    client = openai.OpenAI(base_url=f"{caching_proxy}/v1", api_key=alice_key, max_retries=0)
    response = client.responses.create(model="vllm", input="Translate me", extra_headers=HEADERS)
    assert "Translate me" in response.output_text
    assert _requests(fake_upstream, "/v1/responses", "gpt-4o") == 0
    assert _requests(fake_upstream, "/v1/chat/completions", "gpt-4o") == 1


def test_an_upstream_refusal_reaches_the_client_as_openai_error(client, fake_upstream):
    # A built-in tool that the fake (like a real server without it) refuses: its 400
    # reaches the client, nothing is translated or dropped on the way.
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(
            model="gpt-native",
            input="Draw a lighthouse",
            tools=[{"type": "image_generation"}],
            extra_headers=HEADERS,
        )
    assert _sent(fake_upstream)["tools"] == [{"type": "image_generation"}]
    event = wait_for_usage(raised.value.response.headers["x-request-id"])
    assert event.endpoint == "responses" and event.status_code == 400


def test_a_passed_through_request_over_budget_is_refused_before_the_upstream(
    client, fake_upstream, org_a, alice
):
    budget_set(organization=org_a, monthly_limit_micros=50_000, actor=alice)
    # 20,000 output tokens of gpt-4o would cost 20 cents: more than the budget's 5.
    with pytest.raises(openai.RateLimitError) as raised:
        client.responses.create(
            model="gpt-native", input="too dear", max_output_tokens=20_000, extra_headers=HEADERS
        )
    assert raised.value.body["code"] == "insufficient_quota"
    assert _requests(fake_upstream, "/v1/responses", "gpt-4o") == 0
    event = wait_for_usage(raised.value.response.headers["x-request-id"])
    assert event.endpoint == "responses" and event.status_code == 429
