"""Messages requests to a route that Anthropic serves are passed through as they are, with
the official anthropic SDK as the client and the fake upstream speaking Anthropic's API
(prompt caching emulated as Anthropic does it)."""

from __future__ import annotations

import anthropic
import pytest

from billing.pricing import tokens_cost_micros, usage_tokens
from proxy.tests.test_prompt_cache_e2e import (  # noqa: F401 - fixtures
    SONNET,
    caching_proxy,
    long_system_prompt,
    prices,
    route,
    wait_for_usage,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

UPSTREAM_MODEL = "claude-sonnet-4-5"
HEADERS = {"x-synthlang-cache": "off"}


@pytest.fixture
def claude(caching_proxy, fake_upstream, org_a, alice_key, prices):  # noqa: F811
    fake_upstream.reset()
    route(org_a, "claude-native", "anthropic", UPSTREAM_MODEL, fake_upstream.v1)
    return anthropic.Anthropic(base_url=caching_proxy, api_key=alice_key, max_retries=0)


def test_the_body_goes_upstream_unchanged_and_cache_reads_and_writes_are_accounted(
    claude, fake_upstream
):
    system = [
        {"type": "text", "text": long_system_prompt(), "cache_control": {"type": "ephemeral"}}
    ]
    question = [{"role": "user", "content": "May I return a lamp bought last week?"}]
    first = claude.messages.with_raw_response.create(
        model="claude-native",
        max_tokens=100,
        system=system,
        messages=question,
        metadata={"user_id": "user-7"},
        extra_body={"top_k": 5},  # a field chat has no place for: kept on this path
        extra_headers=HEADERS,
    )
    sent = fake_upstream.stats()["last_bodies"][UPSTREAM_MODEL]
    assert sent == {
        "model": UPSTREAM_MODEL,
        "max_tokens": 100,
        "system": system,
        "messages": question,
        "top_k": 5,
        "metadata": {"user_id": "user-7"},
    }
    written = first.parse().usage.cache_creation_input_tokens
    assert written > 2000

    second = claude.messages.with_raw_response.create(
        model="claude-native",
        max_tokens=100,
        system=system,
        messages=[{"role": "user", "content": "And a chair bought a month ago?"}],
        extra_headers=HEADERS,
    )
    message = second.parse()
    assert message.usage.cache_read_input_tokens == written
    assert message.usage.input_tokens < 50  # only what follows the breakpoint

    first_event = wait_for_usage(first.headers["x-request-id"])
    assert first_event.endpoint == "messages" and first_event.provider == "anthropic"
    assert (first_event.cached_tokens, first_event.cache_write_tokens) == (0, written)
    event = wait_for_usage(second.headers["x-request-id"])
    tokens = usage_tokens(message.usage.model_dump())
    assert event.prompt_tokens == message.usage.input_tokens + written
    assert (event.cached_tokens, event.completion_tokens) == (written, message.usage.output_tokens)
    assert event.cost_micros == tokens_cost_micros(price=SONNET, tokens=tokens) > 0


def test_a_native_stream_relays_anthropics_events_and_is_accounted(claude):
    with claude.messages.stream(
        model="claude-native",
        max_tokens=100,
        messages=[{"role": "user", "content": "Stream the native answer please"}],
        extra_headers=HEADERS,
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert "Stream the native answer please" in text
    assert final.model == UPSTREAM_MODEL and final.stop_reason == "end_turn"
    event = wait_for_usage(request_id)
    assert event.endpoint == "messages" and event.stream is True
    assert event.provider == "anthropic" and event.usage_estimated is False
    assert event.completion_tokens == final.usage.output_tokens > 0
    assert event.prompt_tokens == final.usage.input_tokens > 0


def test_an_anthropic_route_failing_is_an_anthropic_error(
    caching_proxy,  # noqa: F811
    fake_upstream,
    org_a,
    alice_key,
    prices,  # noqa: F811
):
    route(org_a, "claude-broken", "anthropic", "fake-fail-500", fake_upstream.v1)
    client = anthropic.Anthropic(base_url=caching_proxy, api_key=alice_key, max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as raised:
        client.messages.create(
            model="claude-broken", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.body["error"]["type"] == "api_error"
    event = wait_for_usage(raised.value.response.headers["x-request-id"])
    assert event.endpoint == "messages" and event.status_code == 502


def test_what_only_anthropic_understands_reaches_it_on_a_native_route(claude, fake_upstream):
    # A server tool has no chat equivalent: refused on a translated route, left to
    # Anthropic on its own, with the document block beside it.
    messages = [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "Lamp policy"},
                },
                {"type": "text", "text": "What does the policy say?"},
            ],
        }
    ]
    tools = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]
    message = claude.messages.create(
        model="claude-native",
        max_tokens=50,
        messages=messages,
        tools=tools,
        extra_headers=HEADERS,
    )
    assert "What does the policy say?" in message.content[0].text
    sent = fake_upstream.stats()["last_bodies"][UPSTREAM_MODEL]
    assert (sent["messages"], sent["tools"]) == (messages, tools)
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.messages.create(
            model="gpt-4o", max_tokens=50, messages=messages, tools=tools, extra_headers=HEADERS
        )
    assert "server tools" in raised.value.body["error"]["message"]
    counted = claude.messages.count_tokens(
        model="claude-native", messages=messages, tools=tools, extra_headers=HEADERS
    )
    assert counted.input_tokens > 10


def test_with_pii_masking_on_an_anthropic_route_is_translated_and_masked(
    claude, fake_upstream, org_a
):
    """A passed-through body would reach Anthropic unmasked: an organization with masking
    on goes the translated way, and the user still reads their own address in the answer."""
    from guardrails.services import organization_guardrails_update

    organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    answer = claude.messages.create(
        model="claude-native",
        max_tokens=100,
        messages=[{"role": "user", "content": "Repeat after me: write to ada@example.com"}],
        extra_headers=HEADERS,
    )

    sent = str(fake_upstream.stats()["last_bodies"][UPSTREAM_MODEL])
    assert "ada@example.com" not in sent
    assert "[EMAIL_1]" in sent
    assert answer.type == "message"
