"""Compression on the chat path, through the real server with the platform's defaults: what
the upstream receives is what the client sent, except what is lossless to change."""

from __future__ import annotations

import json

import openai
import pytest

from accounts import services

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

NO_CACHE = {"x-synthlang-cache": "off"}
ORDER = {"order_id": "LP-2405-911374", "lines": [{"sku": f"SKU-{n}", "qty": n} for n in range(12)]}
AGENT_TURNS = [
    {"role": "system", "content": "You are the order assistant. Quote order numbers exactly."},
    {"role": "user", "content": "Where is my desk?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_order", "arguments": '{"id": "LP-2405-911374"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": json.dumps(ORDER, indent=2)},
]


def _sdk(proxy_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=key, max_retries=0)


@pytest.mark.parametrize("greeting", ["Hello!", "Thanks!", "Hi there!", "Good morning!"])
def test_a_greeting_reaches_the_upstream_exactly_as_sent(
    proxy_url, alice_key, route_to, fake_upstream, greeting
):
    route_to("greeting", ("greeting-upstream", 0))
    messages = [
        {"role": "system", "content": "You are a friendly assistant for a bakery."},
        {"role": "user", "content": greeting},
    ]
    raw = _sdk(proxy_url, alice_key).chat.completions.with_raw_response.create(
        model="greeting", messages=messages, extra_headers=NO_CACHE
    )
    assert raw.headers["x-synthlang-compression"] == "low"
    assert raw.headers["x-synthlang-tokens-saved"] == "0"
    assert fake_upstream.stats()["last_bodies"]["greeting-upstream"]["messages"] == messages


def test_tool_results_and_arguments_reach_the_upstream_minified_with_their_values_kept(
    proxy_url, alice_key, route_to, fake_upstream
):
    route_to("agent", ("agent-upstream", 0))
    raw = _sdk(proxy_url, alice_key).chat.completions.with_raw_response.create(
        model="agent", messages=AGENT_TURNS, extra_headers=NO_CACHE
    )
    seen = fake_upstream.stats()["last_bodies"]["agent-upstream"]["messages"]
    assert seen[:2] == AGENT_TURNS[:2]
    assert seen[2]["tool_calls"][0]["function"]["arguments"] == '{"id":"LP-2405-911374"}'
    assert seen[3]["content"] == json.dumps(ORDER, separators=(",", ":"))
    assert int(raw.headers["x-synthlang-tokens-saved"]) > 0


def test_an_organization_can_keep_its_tool_results_as_sent(
    proxy_url, org_a, alice_key, route_to, fake_upstream
):
    services.organization_update_settings(
        organization=org_a, actor=None, compression_tool_results=False
    )
    route_to("agent-off", ("agent-off-upstream", 0))
    raw = _sdk(proxy_url, alice_key).chat.completions.with_raw_response.create(
        model="agent-off", messages=AGENT_TURNS, extra_headers=NO_CACHE
    )
    assert fake_upstream.stats()["last_bodies"]["agent-off-upstream"]["messages"] == AGENT_TURNS
    assert raw.headers["x-synthlang-tokens-saved"] == "0"
