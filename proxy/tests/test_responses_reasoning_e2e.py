"""A translated Responses answer keeps the reasoning an OpenAI-compatible upstream sends
beside it (``reasoning_content``): a ``reasoning`` output item, and its stream events,
through the official openai SDK against a real proxy."""

from __future__ import annotations

import pytest

from proxy.tests.reasoning_upstream import answer_for, reasoning_for, routed_reasoning_upstream
from proxy.tests.test_openai_sdk_e2e import sdk, wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

QUESTION = "Why is the sky blue?"


@pytest.fixture
def thinker(live_db, org_a):
    """A route of org_a to an OpenAI-compatible reasoning server (chat completions only)."""
    with routed_reasoning_upstream(org_a) as upstream:
        yield upstream


def test_the_upstreams_reasoning_is_a_reasoning_item_before_the_message(
    proxy_url, alice_key, thinker
):
    raw = sdk(proxy_url, alice_key).responses.with_raw_response.create(
        model="thinker", input=QUESTION, store=False
    )
    response = raw.parse()

    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.id.startswith("rs_") and reasoning.summary == []
    assert [part.text for part in reasoning.content] == [reasoning_for(QUESTION)]
    assert response.output_text == answer_for(QUESTION)
    assert response.usage.output_tokens_details.reasoning_tokens == 9
    assert "messages" in thinker.received[-1]  # translated: chat went upstream
    wait_for_usage(raw.headers["x-request-id"])


def _streamed(client, **extra) -> tuple[list, object]:
    raw = client.responses.with_raw_response.create(
        model="thinker", input=QUESTION, stream=True, store=False, **extra
    )
    return list(raw.parse()), raw.headers


def test_a_stream_has_the_reasoning_text_events_and_item_before_the_answer(
    proxy_url, alice_key, thinker
):
    events, _ = _streamed(sdk(proxy_url, alice_key), extra_headers={"x-synthlang-cache": "off"})

    types = [event.type for event in events]
    start, end = types.index("response.output_item.added"), types.index("response.output_item.done")
    assert types[start : end + 1] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    deltas = [e for e in events if e.type == "response.reasoning_text.delta"]
    assert {(e.output_index, e.content_index) for e in deltas} == {(0, 0)}
    done = next(e for e in events if e.type == "response.reasoning_text.done")
    assert "".join(e.delta for e in deltas) == done.text == reasoning_for(QUESTION)
    texts = [e for e in events if e.type == "response.output_text.delta"]
    assert {e.output_index for e in texts} == {1}
    final = events[-1].response
    assert events[-1].type == "response.completed"
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == reasoning_for(QUESTION)
    assert final.output_text == answer_for(QUESTION)


def test_a_cached_answer_replayed_as_a_stream_keeps_its_reasoning(proxy_url, alice_key, thinker):
    client = sdk(proxy_url, alice_key)
    first = client.responses.with_raw_response.create(model="thinker", input=QUESTION, store=False)
    assert first.headers["x-synthlang-cache"] == "miss"
    wait_for_usage(first.headers["x-request-id"])  # stored once the answer was accounted

    events, headers = _streamed(client)

    assert headers["x-synthlang-cache"] == "hit"
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == reasoning_for(QUESTION)
    assert len(thinker.received) == 1  # the replay did not reach the upstream
