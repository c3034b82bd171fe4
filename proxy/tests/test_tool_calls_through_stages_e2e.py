"""Tool calls survive the request stages: a cached tool-call answer replays as the same
calls (JSON and streamed, whichever way it was stored), and compression leaves the calls,
their ids and their results' content intact on the way upstream."""

from __future__ import annotations

import json
import time

import pytest

from proxy.tests.test_openai_sdk_e2e import sdk

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
            "required": ["order_id"],
        },
    },
}


def calls_of(message) -> list[tuple[str, str, str]]:
    return [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]


def ask(client, question: str):
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": question}],
        tools=[LOOKUP],
    )


def stream_calls(client, question: str):
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": question}],
        tools=[LOOKUP],
        stream=True,
    ) as response:
        status = response.headers["x-synthlang-cache"]
        calls: dict[int, dict] = {}
        finish = None
        for chunk in response.parse():
            for choice in chunk.choices:
                for delta in choice.delta.tool_calls or []:
                    merged = calls.setdefault(delta.index, {"id": "", "name": "", "args": ""})
                    merged["id"] = delta.id or merged["id"]
                    if delta.function:
                        merged["name"] += delta.function.name or ""
                        merged["args"] += delta.function.arguments or ""
                finish = choice.finish_reason or finish
    return status, [(c["id"], c["name"], c["args"]) for _, c in sorted(calls.items())], finish


def test_a_cached_tool_call_answer_replays_as_the_same_calls(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    question = "Where is my order A-1138 right now?"
    first = ask(client, question)
    assert first.headers["x-synthlang-cache"] == "miss"
    original = first.parse().choices[0]
    assert original.finish_reason == "tool_calls" and original.message.tool_calls

    again = ask(client, question)
    assert again.headers["x-synthlang-cache"] == "hit"
    replayed = again.parse().choices[0]
    assert calls_of(replayed.message) == calls_of(original.message)
    assert replayed.finish_reason == "tool_calls"

    status, streamed, finish = stream_calls(client, question)
    assert status == "hit"
    assert streamed == calls_of(original.message)
    assert finish == "tool_calls"


def test_a_streamed_tool_call_answer_is_stored_and_served_both_ways(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    question = "Has order B-2240 shipped yet?"
    status, streamed, finish = stream_calls(client, question)
    assert status == "miss" and streamed and finish == "tool_calls"
    for _ in range(50):  # stored after the stream's last byte, in the background
        hit = ask(client, question)
        if hit.headers["x-synthlang-cache"] == "hit":
            break
        time.sleep(0.1)
    assert hit.headers["x-synthlang-cache"] == "hit"
    assert calls_of(hit.parse().choices[0].message) == streamed
    status, again, _ = stream_calls(client, question)
    assert (status, again) == ("hit", streamed)


def test_tools_offered_or_not_never_share_a_cache_entry(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    question = "Can you check order C-3301 for me?"
    with_tools = ask(client, question).parse().choices[0]
    plain = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": question}]
    )
    assert with_tools.message.tool_calls
    assert plain.headers["x-synthlang-cache"] == "miss"
    assert plain.parse().choices[0].message.tool_calls is None


TOOL_OUTPUT = {
    "order": "D-4410",
    "status": "in transit",
    "events": [{"at": "2024-05-01T10:00:00Z", "where": "Rotterdam", "note": "left the depot"}],
}


def test_compression_keeps_tool_calls_and_results_intact_upstream(
    proxy_url, alice_key, route_to, fake_upstream
):
    route_to("orders-model", ("gpt-4o-mini", 0))
    client = sdk(proxy_url, alice_key)
    headers = {"x-synthlang-compression": "high", "x-synthlang-cache": "off"}
    messages = [
        {
            "role": "system",
            "content": "You are a very helpful assistant that really always answers politely.",
        },
        {"role": "user", "content": "Please could you tell me where order D-4410 is?"},
    ]
    first = client.chat.completions.create(
        model="orders-model", messages=messages, tools=[LOOKUP], extra_headers=headers
    )
    [call] = first.choices[0].message.tool_calls
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps(TOOL_OUTPUT, indent=4)},
    ]
    final = client.chat.completions.create(
        model="orders-model", messages=messages, tools=[LOOKUP], extra_headers=headers
    )
    sent = fake_upstream.stats()["last_bodies"]["gpt-4o-mini"]
    assistant, tool = sent["messages"][2], sent["messages"][3]
    assert assistant["tool_calls"] == [call.model_dump(exclude_none=True)]
    assert tool["tool_call_id"] == call.id
    assert json.loads(tool["content"]) == TOOL_OUTPUT  # whitespace may go, nothing else
    assert sent["tools"] == [LOOKUP]
    assert "Rotterdam" in final.choices[0].message.content
