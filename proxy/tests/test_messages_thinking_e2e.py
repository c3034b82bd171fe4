"""A translated Messages answer carries the reasoning an OpenAI-compatible upstream sends
beside it (``reasoning_content``) as Anthropic thinking blocks, when the request asked for
thinking, through the official anthropic SDK against a real proxy."""

from __future__ import annotations

import pytest

from guardrails import services as guardrails_services
from proxy.tests.reasoning_upstream import answer_for, reasoning_for, routed_reasoning_upstream
from proxy.tests.test_messages_sdk_e2e import client
from proxy.tests.test_openai_sdk_e2e import wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

QUESTION = "Why do leaves change colour?"
THINKING = {"type": "enabled", "budget_tokens": 1024}
EMAIL = "jane.doe@example.com"


@pytest.fixture
def thinker(live_db, org_a):
    """A route of org_a to an OpenAI-compatible reasoning server (chat completions only)."""
    with routed_reasoning_upstream(org_a) as upstream:
        yield upstream


def _ask(proxy_url, key, **extra):
    return client(proxy_url, key).messages.with_raw_response.create(
        model="thinker",
        max_tokens=2048,
        messages=[{"role": "user", "content": QUESTION}],
        extra_headers={"x-synthlang-cache": "off"},
        **extra,
    )


def test_the_reasoning_is_a_thinking_block_before_the_text_when_thinking_is_asked(
    proxy_url, alice_key, thinker
):
    raw = _ask(proxy_url, alice_key, thinking=THINKING)
    message = raw.parse()

    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == reasoning_for(QUESTION)
    assert message.content[0].signature == ""
    assert message.content[1].text == answer_for(QUESTION)
    assert message.usage.output_tokens == 20  # the reasoning tokens are output tokens
    assert "thinking" not in thinker.received[-1]  # the budget has no chat equivalent
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.endpoint == "messages" and event.completion_tokens == 20


def test_without_thinking_asked_the_answer_has_text_only(proxy_url, alice_key, thinker):
    message = _ask(proxy_url, alice_key).parse()

    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == answer_for(QUESTION)


def test_a_streamed_answer_opens_a_thinking_block_then_the_text_block(
    proxy_url, alice_key, thinker
):
    with client(proxy_url, alice_key).messages.stream(
        model="thinker",
        max_tokens=2048,
        thinking=THINKING,
        messages=[{"role": "user", "content": QUESTION}],
        extra_headers={"x-synthlang-cache": "off"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["thinking", "text"]
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert deltas.count("thinking_delta") == 2 and "text_delta" in deltas
    assert deltas.index("text_delta") > max(i for i, d in enumerate(deltas) if d != "text_delta")
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking == reasoning_for(QUESTION)
    assert final.content[1].text == answer_for(QUESTION)
    assert final.usage.output_tokens == 20


def test_the_thinking_blocks_of_an_earlier_turn_are_left_out_upstream(
    proxy_url, alice_key, thinker
):
    first = _ask(proxy_url, alice_key, thinking=THINKING).parse()
    client(proxy_url, alice_key).messages.create(
        model="thinker",
        max_tokens=2048,
        thinking=THINKING,
        messages=[
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": "And in spring?"},
        ],
        extra_headers={"x-synthlang-cache": "off"},
    )

    sent = thinker.received[-1]["messages"]
    assert sent[1] == {"role": "assistant", "content": answer_for(QUESTION)}
    assert "reasoning_content" not in sent[1]


def test_masked_values_the_model_repeats_while_reasoning_are_restored_in_its_thinking(
    proxy_url, alice_key, org_a, thinker
):
    """The reasoning upstream repeats the question in its reasoning: with PII masking on,
    that is the placeholder, and the client reads the value (JSON and streamed)."""
    guardrails_services.organization_guardrails_update(
        organization=org_a, pii_mode="mask", actor=None
    )
    question = f"Can you write to {EMAIL} today?"
    common = {
        "model": "thinker",
        "max_tokens": 2048,
        "thinking": THINKING,
        "messages": [{"role": "user", "content": question}],
        "extra_headers": {"x-synthlang-cache": "off"},
    }
    message = client(proxy_url, alice_key).messages.create(**common)
    with client(proxy_url, alice_key).messages.stream(**common) as stream:
        streamed = stream.get_final_message()

    sent = thinker.received[-1]["messages"][-1]["content"]
    assert EMAIL not in sent and "[EMAIL_1]" in sent
    for answer in (message, streamed):
        assert answer.content[0].thinking == reasoning_for(question)
        assert answer.content[1].text == answer_for(question)
