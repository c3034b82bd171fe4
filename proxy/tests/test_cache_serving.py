"""Cache hits through the real server: JSON and streamed, headers, bypass and refresh."""

from __future__ import annotations

import openai
import pytest

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def client(proxy_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=key, max_retries=0)


def ask(sdk: openai.OpenAI, question: str, **kwargs):
    return sdk.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": question}], **kwargs
    )


def test_repeated_question_is_a_hit_with_the_same_answer(proxy_url, alice_key):
    sdk = client(proxy_url, alice_key)
    first = ask(sdk, "What is the boiling point of water at sea level?")
    second = ask(sdk, "What is the boiling point of water at sea level?")
    assert first.headers["x-synthlang-cache"] == "miss"
    assert second.headers["x-synthlang-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content


def test_streamed_hit_parses_in_the_sdk(proxy_url, alice_key):
    sdk = client(proxy_url, alice_key)
    original = ask(sdk, "Name the largest planet in the solar system.").parse()
    with sdk.chat.completions.with_streaming_response.create(
        model="gpt-4o",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Name the largest planet in the solar system."}],
    ) as response:
        assert response.headers["x-synthlang-cache"] == "hit"
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == original.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == original.usage.completion_tokens


def test_a_stream_that_completed_is_served_later_to_a_json_client(proxy_url, alice_key):
    sdk = client(proxy_url, alice_key)
    stream = sdk.chat.completions.create(
        model="gpt-4o",
        stream=True,
        messages=[{"role": "user", "content": "Explain photosynthesis in one line."}],
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    import time

    for _ in range(50):  # the stream is stored after its last byte, in the background
        again = ask(sdk, "Explain photosynthesis in one line.")
        if again.headers["x-synthlang-cache"] == "hit":
            break
        time.sleep(0.1)
    assert again.headers["x-synthlang-cache"] == "hit"
    assert again.parse().choices[0].message.content == streamed


def test_cache_off_header_bypasses_and_refresh_replaces(proxy_url, alice_key):
    sdk = client(proxy_url, alice_key)
    ask(sdk, "How many continents are there?")
    bypass = ask(sdk, "How many continents are there?", extra_headers={"x-synthlang-cache": "off"})
    assert bypass.headers["x-synthlang-cache"] == "off"
    refreshed = ask(
        sdk, "How many continents are there?", extra_headers={"x-synthlang-cache": "refresh"}
    )
    assert refreshed.headers["x-synthlang-cache"] == "miss"
    assert ask(sdk, "How many continents are there?").headers["x-synthlang-cache"] == "hit"


def test_another_organization_never_gets_the_entry(proxy_url, alice_key, charlie_key):
    ask(client(proxy_url, alice_key), "What is our refund policy for annual plans?")
    other = ask(client(proxy_url, charlie_key), "What is our refund policy for annual plans?")
    assert other.headers["x-synthlang-cache"] == "miss"


def test_a_different_system_prompt_is_a_different_entry(proxy_url, alice_key):
    sdk = client(proxy_url, alice_key)
    question = {"role": "user", "content": "Summarise the plan."}
    sdk.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "Answer as a pirate."}, question]
    )
    other = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "system", "content": "Answer as a lawyer."}, question]
    )
    assert other.headers["x-synthlang-cache"] == "miss"


def test_bad_cache_header_is_a_400(proxy_url, alice_key):
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client(proxy_url, alice_key), "hi", extra_headers={"x-synthlang-cache": "maybe"})
    assert raised.value.body["param"] == "x-synthlang-cache"
