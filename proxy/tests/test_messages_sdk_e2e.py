"""The official anthropic SDK against a real proxy process: Anthropic's Messages API,
translated to chat completions for the in-process fake and for an OpenAI-format route."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import anthropic
import httpx2 as httpx
import pytest

from accounts import services
from billing.models import Price
from billing.services import budget_set
from common.testing import live_server
from proxy.tests.conftest import UPSTREAM_KEY
from proxy.tests.test_openai_sdk_e2e import wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def client(proxy_url: str, key: str, **kwargs) -> anthropic.Anthropic:
    # The base URL without /v1, as Claude Code's ANTHROPIC_BASE_URL.
    return anthropic.Anthropic(base_url=proxy_url, api_key=key, max_retries=0, **kwargs)


@pytest.fixture(params=["in-process", "http"])
def model(request, route_to):
    """The in-process fake (the default provider) and an OpenAI-format route over HTTP."""
    if request.param == "in-process":
        return "gpt-4o-mini"
    route_to("fake-http-messages", ("gpt-4o-mini", 0))
    return "fake-http-messages"


def test_create_answers_a_message_and_records_its_usage_under_messages(proxy_url, alice_key, model):
    raw = client(proxy_url, alice_key).messages.with_raw_response.create(
        model=model,
        max_tokens=200,
        system="You are a helpful assistant.",
        messages=[{"role": "user", "content": "Say hello to Ada"}],
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.model == model
    assert message.stop_reason == "end_turn"
    assert "Say hello to Ada" in message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert raw.headers["x-synthlang-cache"] in {"hit", "miss", "off"}
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.endpoint == "messages"
    assert event.model == model
    assert event.status_code == 200
    assert event.prompt_tokens == message.usage.input_tokens
    assert event.completion_tokens == message.usage.output_tokens


def test_bearer_auth_token_works_as_claude_code_sends_it(proxy_url, alice_key):
    sdk = anthropic.Anthropic(base_url=proxy_url, auth_token=alice_key, max_retries=0)
    message = sdk.messages.create(
        model="gpt-4o",
        max_tokens=50,
        messages=[{"role": "user", "content": "bearer works"}],
        extra_headers={"anthropic-version": "2023-06-01"},
    )
    assert "bearer works" in message.content[0].text


def test_messages_stream_helper_yields_text_and_the_final_message(proxy_url, alice_key, model):
    with client(proxy_url, alice_key).messages.stream(
        model=model,
        max_tokens=200,
        messages=[{"role": "user", "content": "stream me a few words please"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert "stream me a few words please" in text
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    event = wait_for_usage(request_id)
    assert event.endpoint == "messages" and event.stream is True
    assert event.completion_tokens == final.usage.output_tokens
    assert event.prompt_tokens == final.usage.input_tokens


def test_stream_true_gives_anthropics_event_sequence(proxy_url, alice_key):
    events = list(
        client(proxy_url, alice_key).messages.create(
            model="gpt-4o",
            max_tokens=100,
            messages=[{"role": "user", "content": "raw events"}],
            stream=True,
        )
    )
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1] == "content_block_start" and "content_block_delta" in kinds
    assert kinds.index("content_block_stop") == len(kinds) - 3
    assert events[-2].delta.stop_reason == "end_turn"


def test_the_wire_carries_event_lines_and_a_ping(proxy_url, alice_key):
    body = {
        "model": "gpt-4o",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "wire"}],
    }
    with httpx.stream(
        "POST", f"{proxy_url}/v1/messages", json=body, headers={"x-api-key": alice_key}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("event:")]
    assert lines[:2] == ["event: message_start", "event: ping"]
    assert lines[-1] == "event: message_stop"


def test_a_tool_round_trip_calls_the_tool_then_answers_from_its_result(proxy_url, alice_key, model):
    sdk = client(proxy_url, alice_key)
    messages = [{"role": "user", "content": "What is the weather in Lisbon?"}]
    first = sdk.messages.create(model=model, max_tokens=200, tools=[WEATHER], messages=messages)
    assert first.stop_reason == "tool_use"
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather" and isinstance(call.input["city"], str)
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "Clear skies, 24 C"}
            ],
        },
    ]
    final = sdk.messages.create(model=model, max_tokens=200, tools=[WEATHER], messages=messages)
    assert final.stop_reason == "end_turn"
    assert all(block.type == "text" for block in final.content)
    assert "Clear skies, 24 C" in final.content[0].text


def test_streamed_tool_input_arrives_as_json_deltas(proxy_url, alice_key, model):
    with client(proxy_url, alice_key).messages.stream(
        model=model,
        max_tokens=200,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        deltas = sum(1 for event in stream if event.type == "input_json")
        final = stream.get_final_message()
    [call] = final.content
    assert call.type == "tool_use" and call.name == "get_weather"
    assert isinstance(call.input["city"], str)
    assert deltas >= 1
    assert final.stop_reason == "tool_use"


def test_count_tokens_counts_the_prompt_and_grows_with_it(proxy_url, alice_key):
    sdk = client(proxy_url, alice_key)
    short = sdk.messages.count_tokens(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
    )
    longer = sdk.messages.count_tokens(
        model="gpt-4o",
        system="You are a careful assistant.",
        tools=[WEATHER],
        messages=[{"role": "user", "content": "hello " * 50}],
    )
    assert short.input_tokens > 0
    assert longer.input_tokens > short.input_tokens + 50


def test_a_bad_key_raises_authentication_error_in_anthropics_shape(proxy_url, live_db):
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client(proxy_url, "sk-syn-" + "A" * 48).messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.body["type"] == "error"
    assert raised.value.body["error"]["type"] == "authentication_error"


def test_missing_max_tokens_raises_bad_request_error(proxy_url, alice_key):
    sdk = client(proxy_url, alice_key)
    with pytest.raises(anthropic.BadRequestError) as raised:
        sdk.post(
            "/v1/messages",
            body={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            cast_to=anthropic.types.Message,
        )
    error = raised.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert "max_tokens" in error["message"]


def test_malformed_json_and_a_model_outside_the_key_are_anthropic_errors(
    proxy_url, org_a, alice, live_db
):
    _, key = services.api_key_create(
        organization=org_a, user=alice, actor=None, allowed_models=["gpt-4o-mini"]
    )
    response = httpx.post(
        f"{proxy_url}/v1/messages", content=b"{not json", headers={"x-api-key": key}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.PermissionDeniedError) as raised:
        client(proxy_url, key).messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "no"}]
        )
    assert raised.value.body["error"]["type"] == "permission_error"
    with pytest.raises(anthropic.PermissionDeniedError):
        client(proxy_url, key).messages.count_tokens(
            model="gpt-4o", messages=[{"role": "user", "content": "no"}]
        )


def test_rate_limits_apply_with_a_429_in_anthropics_shape(proxy_url, org_a, bob, live_db):
    services.role_limit_set(
        organization=org_a, role="basic", rpm_limit=2, tpm_limit=None, actor=None
    )
    _, key = services.api_key_create(organization=org_a, user=bob, actor=None)
    sdk = client(proxy_url, key)
    # The limits count per minute window: three requests straddling a window's end would
    # all pass.
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
    for _ in range(2):
        sdk.messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.RateLimitError) as raised:
        sdk.messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.body["error"]["type"] == "rate_limit_error"
    assert int(raised.value.response.headers["retry-after"]) >= 1
    assert raised.value.response.headers["x-ratelimit-limit-requests"] == "2"


def test_cost_is_recorded_and_a_budget_refuses_with_a_429_in_anthropics_shape(
    org_a, alice, alice_key, live_db, tmp_path
):
    Price.objects.create(
        model_pattern="gpt-4o",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=2_500_000,
        output_per_mtok_micros=10_000_000,
    )
    budget_set(organization=org_a, monthly_limit_micros=50_000, actor=alice)
    env = {"PRICE_CACHE_SECONDS": "0", "BUDGET_CACHE_SECONDS": "0"}
    with live_server(env=env, log_path=tmp_path / "proxy.log") as url:
        sdk = client(url, alice_key)
        raw = sdk.messages.with_raw_response.create(
            model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "priced"}]
        )
        # 20,000 output tokens would cost 20 cents: more than the budget's 5.
        with pytest.raises(anthropic.RateLimitError) as raised:
            sdk.messages.create(
                model="gpt-4o",
                max_tokens=20_000,
                messages=[{"role": "user", "content": "too dear"}],
            )
    paid = wait_for_usage(raw.headers["x-request-id"])
    assert paid.endpoint == "messages" and paid.cost_micros > 0
    assert raised.value.body["error"]["type"] == "rate_limit_error"
    refused = wait_for_usage(raised.value.response.headers["x-request-id"])
    assert refused.endpoint == "messages" and refused.status_code == 429


def test_an_upstream_that_keeps_failing_raises_a_server_error(
    proxy_url, alice_key, route_to, fake_upstream
):
    route_to("always-broken-messages", ("fake-fail-500", 0))
    with pytest.raises(anthropic.InternalServerError) as raised:
        client(proxy_url, alice_key).messages.create(
            model="always-broken-messages",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert raised.value.body["error"]["type"] == "api_error"
    event = wait_for_usage(raised.value.response.headers["x-request-id"])
    assert event.endpoint == "messages" and event.status_code == 502


@pytest.mark.parametrize("native", [False, True], ids=["translated", "native"])
def test_a_client_leaving_mid_stream_closes_the_upstream_and_is_accounted(
    proxy_url, alice_key, route_to, fake_upstream, org_a, native
):
    from proxy.models import Deployment, ModelRoute

    fake_upstream.reset()
    if native:
        credential = services.provider_credential_set(
            organization=org_a,
            provider="anthropic",
            key=UPSTREAM_KEY,
            base_url=fake_upstream.v1,
            name="fake-anthropic",
            actor=None,
        )
        route = ModelRoute.objects.create(organization=org_a, public_name="slow-messages")
        Deployment.objects.create(
            route=route, provider="anthropic", credential=credential, upstream_model="fake-slow-400"
        )
    else:
        route_to("slow-messages", ("fake-slow-400", 0))
    body = {
        "model": "slow-messages",
        "max_tokens": 500,
        "stream": True,
        "messages": [{"role": "user", "content": " ".join(f"word{i}" for i in range(40))}],
    }
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", f"{proxy_url}/v1/messages", json=body, headers={"x-api-key": alice_key}
        ) as response,
    ):
        request_id = response.headers["x-request-id"]
        deltas = 0
        for line in response.iter_lines():
            deltas += line == "event: content_block_delta"
            if deltas == 3:
                break
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and fake_upstream.stats()["streams_abandoned"] < 1:
        time.sleep(0.1)
    stats = fake_upstream.stats()
    assert (stats["streams_abandoned"], stats["streams_completed"]) == (1, 0)
    event = wait_for_usage(request_id)
    assert event.endpoint == "messages" and event.client_disconnected is True
    assert event.prompt_tokens > 0 and event.completion_tokens > 0


def test_a_repeated_request_is_a_cache_hit_replayed_as_a_message_and_as_a_stream(
    proxy_url, alice_key
):
    sdk = client(proxy_url, alice_key)
    request = {
        "model": "gpt-4o",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Name three rivers of Portugal, please."}],
    }
    first = sdk.messages.with_raw_response.create(**request)
    assert first.headers["x-synthlang-cache"] == "miss"
    wait_for_usage(first.headers["x-request-id"])  # stored once the answer was accounted
    second = sdk.messages.with_raw_response.create(**request)
    assert second.headers["x-synthlang-cache"] == "hit"
    assert second.parse().content[0].text == first.parse().content[0].text
    with sdk.messages.stream(**request) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        assert stream.response.headers["x-synthlang-cache"] == "hit"
        request_id = stream.response.headers["x-request-id"]
    assert text == first.parse().content[0].text
    assert final.stop_reason == "end_turn"
    event = wait_for_usage(request_id)
    assert event.endpoint == "messages" and event.cache == "hit"


def test_wrong_methods_and_unknown_paths_answer_in_anthropics_shape(proxy_url, alice_key):
    headers = {"x-api-key": alice_key}
    wrong_method = httpx.get(f"{proxy_url}/v1/messages", headers=headers)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"
    unknown = httpx.post(f"{proxy_url}/v1/messages/batches", headers=headers, json={})
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "error"
    assert unknown.json()["error"]["type"] == "not_found_error"
