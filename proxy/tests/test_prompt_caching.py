"""The providers' prompt caches: Anthropic breakpoints, OpenAI's prompt_cache_key, the fake's
emulation of both."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from proxy.providers import anthropic, fake_cache
from proxy.providers.base import PromptCache, Target
from proxy.providers.fake import chat_body, messages_body
from proxy.providers.openai import AzureOpenAIProvider, OpenAICompatibleProvider
from proxy.providers.prompt_cache import (
    anthropic_minimum_cacheable_tokens,
    prompt_cache_for,
    prompt_cache_key,
)
from proxy.tokens import count_tokens

SONNET = "claude-sonnet-4-5-20250929"


@pytest.fixture(autouse=True)
def _empty_fake_caches():
    fake_cache.prompt_caches_clear()
    yield
    fake_cache.prompt_caches_clear()


def text_of(tokens: int, topic: str = "refunds") -> str:
    """Prose of about ``tokens`` tokens (Claude counted with cl100k_base), never repeating
    a sentence, so no two calls share a prefix by accident."""
    sentences, index = [], 0
    while count_tokens(" ".join(sentences), model="claude") < tokens:
        sentences.append(f"Rule {index} about {topic}: the agent checks item {index * 7} first.")
        index += 1
    return " ".join(sentences)


def conversation(system: str, turns: int) -> list[dict]:
    messages = [{"role": "system", "content": system}]
    for turn in range(turns):
        messages.append({"role": "user", "content": f"Question {turn}: what about order {turn}?"})
        messages.append({"role": "assistant", "content": f"Answer {turn}: order {turn} ships."})
    messages.append({"role": "user", "content": f"Question {turns}: and order {turns}?"})
    return messages


def agent_step(calls: int) -> list[dict]:
    """An assistant turn calling ``calls`` tools at once, and their results."""
    tool_calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": "read", "arguments": "{}"}}
        for i in range(calls)
    ]
    results = [
        {"role": "tool", "tool_call_id": f"call_{i}", "content": f"file {i}"} for i in range(calls)
    ]
    return [{"role": "assistant", "content": None, "tool_calls": tool_calls}, *results]


def markers(request: dict) -> list[str]:
    """Where the cache_control markers are, as "tools[i]", "system[i]", "messages[i][j]"."""
    found = [
        f"tools[{i}]"
        for i, tool in enumerate(request.get("tools") or [])
        if "cache_control" in tool
    ]
    system = request.get("system")
    if isinstance(system, list):
        found += [f"system[{i}]" for i, block in enumerate(system) if "cache_control" in block]
    for i, message in enumerate(request["messages"]):
        found += [
            f"messages[{i}][{j}]"
            for j, block in enumerate(message["content"])
            if "cache_control" in block
        ]
    return found


def translated(messages, *, model=SONNET, breakpoints=True, **body) -> dict:
    return anthropic.to_messages_request(
        {"model": "x", "messages": messages, **body}, model, breakpoints=breakpoints
    )


# --- Where the breakpoints go --------------------------------------------------------------


def test_breakpoints_close_the_tools_the_system_prompt_and_the_conversation_so_far():
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": text_of(150, f"tool {i}"),
                "parameters": {"type": "object"},
            },
        }
        for i in range(8)
    ]
    request = translated(conversation(text_of(3000), 3), tools=tools)
    assert markers(request) == ["tools[7]", "system[0]", "messages[5][0]"]
    # The marked message is the assistant's last answer, before the newest user turn.
    assert request["messages"][5]["role"] == "assistant"
    assert request["messages"][6]["role"] == "user"
    assert request["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_no_breakpoint_below_the_models_minimum_cacheable_length():
    # 600 tokens: under Sonnet's 1,024.
    assert markers(translated(conversation(text_of(600), 2))) == []
    # 2,000 tokens: enough for Sonnet, not for Haiku 4.5 (4,096) or Haiku 3 (2,048 + the turns).
    long_enough = conversation(text_of(2000), 2)
    assert markers(translated(long_enough)) == ["system[0]", "messages[3][0]"]
    assert markers(translated(long_enough, model="claude-haiku-4-5-20251001")) == []
    assert (
        markers(translated(conversation(text_of(1900), 0), model="claude-3-haiku-20240307")) == []
    )
    assert markers(translated(conversation(text_of(2100), 0), model="claude-3-haiku-20240307")) == [
        "system[0]"
    ]


def test_the_minimum_applies_to_the_whole_prefix_a_marker_closes():
    # Tools of 600 tokens alone are too short; with a 600-token system prompt the prefix
    # that ends after the system prompt is long enough.
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "description": text_of(600), "parameters": {}},
        }
    ]
    request = translated(conversation(text_of(600, "billing"), 0), tools=tools)
    assert markers(request) == ["system[0]"]
    # A short system prompt, and a long conversation: only the conversation is marked.
    messages = [{"role": "system", "content": "Be brief."}]
    messages += [
        {"role": "user", "content": text_of(1200)},
        {"role": "assistant", "content": "Ok."},
    ]
    messages += [{"role": "user", "content": "Next?"}]
    assert markers(translated(messages)) == ["messages[1][0]"]


def test_the_minimum_cacheable_lengths_follow_the_model():
    assert anthropic_minimum_cacheable_tokens("claude-sonnet-4-5-20250929") == 1024
    assert anthropic_minimum_cacheable_tokens("anthropic/claude-opus-4-6") == 4096
    assert anthropic_minimum_cacheable_tokens("claude-haiku-4-5") == 4096
    assert anthropic_minimum_cacheable_tokens("claude-3-5-haiku-latest") == 2048
    assert anthropic_minimum_cacheable_tokens("claude-opus-4-1-20250805") == 1024
    assert anthropic_minimum_cacheable_tokens("some-new-model") == 1024


def test_no_breakpoints_when_the_organization_turned_them_off():
    assert markers(translated(conversation(text_of(3000), 3), breakpoints=False)) == []


EPHEMERAL = {"type": "ephemeral"}


def _mark_first_question(messages):
    # A content part marked, as on Anthropic's API and in OpenRouter's OpenAI format.
    text = messages[1]["content"]
    messages[1]["content"] = [{"type": "text", "text": text, "cache_control": EPHEMERAL}]


def _mark_system_message(messages):
    # LiteLLM's form: the marker on the message itself.
    messages[0]["cache_control"] = EPHEMERAL


@pytest.mark.parametrize(
    ("mark", "expected"),
    [(_mark_first_question, ["messages[0][0]"]), (_mark_system_message, ["system[0]"])],
)
def test_a_clients_own_markers_are_kept_and_none_are_added(mark, expected):
    messages = conversation(text_of(3000), 3)
    mark(messages)
    assert markers(translated(messages)) == expected


def test_a_clients_marker_on_a_tool_or_the_whole_request_is_the_only_one():
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "description": "Find.", "parameters": {}},
            "cache_control": {"type": "ephemeral"},
        }
    ]
    request = translated(conversation(text_of(3000), 3), tools=tools)
    assert markers(request) == ["tools[0]"]
    automatic = translated(conversation(text_of(3000), 3), cache_control={"type": "ephemeral"})
    assert markers(automatic) == []
    assert automatic["cache_control"] == {"type": "ephemeral"}


def test_a_long_agent_step_gets_a_fourth_marker_where_the_last_turn_put_its_own():
    messages = conversation(text_of(3000), 1)
    messages += agent_step(25)
    request = translated(messages)
    # Messages: the first question, the answer the last turn marked, the second question,
    # 25 tool calls, 25 results (the newest user turn). The step added 26 blocks since the
    # last turn's marker: more than Anthropic looks back.
    assert markers(request) == ["system[0]", "messages[1][0]", "messages[3][24]"]
    assert len(markers(request)) <= 4
    # A short step needs no fourth marker: the last turn's entry is within reach.
    short = translated(conversation(text_of(3000), 1) + agent_step(5))
    assert markers(short) == ["system[0]", "messages[3][4]"]


def test_an_empty_text_block_is_never_marked():
    messages = conversation(text_of(3000), 1)
    messages[2] = {
        "role": "assistant",
        "content": [{"type": "text", "text": "Done."}, {"type": "text", "text": ""}],
    }
    request = translated(messages)
    assert "messages[1][0]" in markers(request)
    assert "cache_control" not in request["messages"][1]["content"][1]


def test_anthropic_usage_reaches_the_client_in_openai_terms():
    completion = anthropic.from_messages_response(
        {
            "content": [{"type": "text", "text": "Hi."}],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 40,
                "cache_creation_input_tokens": 500,
                "cache_read_input_tokens": 3000,
                "output_tokens": 7,
            },
        },
        SONNET,
    )
    assert completion["usage"]["prompt_tokens"] == 3540
    assert completion["usage"]["prompt_tokens_details"] == {"cached_tokens": 3000}
    assert completion["usage"]["cache_creation_input_tokens"] == 500
    assert completion["usage"]["total_tokens"] == 3547


# --- OpenAI's prompt_cache_key -------------------------------------------------------------


def _principal(**fields):
    defaults = {
        "organization_id": 7,
        "key_id": 70,
        "prompt_cache_breakpoints": True,
        "prompt_cache_key_scope": "organization",
    }
    return SimpleNamespace(**{**defaults, **fields})


def test_the_prompt_cache_key_is_a_keyed_hash_per_organization_or_per_key(settings):
    org_key = prompt_cache_key(scope="organization", organization_id=7, key_id=70)
    assert re.fullmatch(r"[0-9a-f]{32}", org_key)
    assert org_key == prompt_cache_key(scope="organization", organization_id=7, key_id=71)
    assert org_key != prompt_cache_key(scope="organization", organization_id=8, key_id=70)
    per_key = prompt_cache_key(scope="key", organization_id=7, key_id=70)
    assert per_key not in (org_key, prompt_cache_key(scope="key", organization_id=7, key_id=71))
    assert prompt_cache_key(scope="off", organization_id=7, key_id=70) == ""
    # Not guessable without the server's secret: another secret, other keys.
    settings.SECRET_KEY = "another-secret-" + "x" * 40
    assert prompt_cache_key(scope="organization", organization_id=7, key_id=70) != org_key


def test_the_organizations_settings_become_the_calls_prompt_cache():
    assert prompt_cache_for(_principal()) == PromptCache(
        breakpoints=True, key=prompt_cache_key(scope="organization", organization_id=7, key_id=70)
    )
    off = prompt_cache_for(_principal(prompt_cache_breakpoints=False, prompt_cache_key_scope="off"))
    assert off == PromptCache()


def _target(base_url="https://api.openai.com/v1", options=None, key="k" * 32) -> Target:
    return Target(
        provider="openai",
        upstream_model="gpt-4o",
        base_url=base_url,
        options=options or {},
        prompt_cache=PromptCache(key=key),
    )


def test_openai_gets_the_prompt_cache_key_unless_the_client_sent_its_own():
    provider = OpenAICompatibleProvider()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    assert provider._chat_body(_target(), body)["prompt_cache_key"] == "k" * 32
    own = {**body, "prompt_cache_key": "client-chosen"}
    assert provider._chat_body(_target(), own)["prompt_cache_key"] == "client-chosen"
    assert "prompt_cache_key" not in provider._chat_body(_target(key=""), body)
    assert "prompt_cache_key" not in body  # the client's body is not mutated


def test_other_openai_compatible_servers_get_it_only_when_their_key_says_so():
    provider = OpenAICompatibleProvider()
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert "prompt_cache_key" not in provider._chat_body(_target("http://vllm.local/v1"), body)
    opted_in = _target("http://vllm.local/v1", {"prompt_cache_key": True})
    assert provider._chat_body(opted_in, body)["prompt_cache_key"] == "k" * 32
    opted_out = _target(options={"prompt_cache_key": False})
    assert "prompt_cache_key" not in provider._chat_body(opted_out, body)
    azure = AzureOpenAIProvider()
    assert "prompt_cache_key" not in azure._chat_body(_target("https://r.openai.azure.com"), body)
    azure_opted_in = _target("https://r.openai.azure.com", {"prompt_cache_key": True})
    assert azure._chat_body(azure_opted_in, body)["prompt_cache_key"] == "k" * 32


# --- The fake's emulation ------------------------------------------------------------------


def test_fake_openai_reports_a_repeated_prefix_as_cached_in_128_token_steps():
    system = {"role": "system", "content": text_of(1500)}
    first = {"messages": [system, {"role": "user", "content": "one?"}]}
    usage = chat_body(first, model="gpt-4o")["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    second = {"messages": [system, {"role": "user", "content": "two?"}]}
    usage = chat_body(second, model="gpt-4o")["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    assert 1024 <= cached <= usage["prompt_tokens"]
    assert (cached - 1024) % 128 == 0
    assert usage["prompt_tokens"] - cached < 128 + 20  # the new question and the rounding
    # Another upstream account has its own cache; a short prompt is never cached.
    assert chat_body(second, model="gpt-4o", cache_scope="other")["usage"][
        "prompt_tokens_details"
    ] == {"cached_tokens": 0}
    short = {"messages": [{"role": "user", "content": "hi"}]}
    chat_body(short, model="gpt-4o")
    assert chat_body(short, model="gpt-4o")["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def _messages_request(messages, model=SONNET, **body):
    return translated(messages, model=model, **body)


def test_fake_anthropic_writes_the_marked_prefix_then_reads_it():
    system = text_of(3000)
    first = messages_body(_messages_request(conversation(system, 0)))["usage"]
    assert first["cache_read_input_tokens"] == 0
    assert first["cache_creation_input_tokens"] >= 3000
    second = messages_body(_messages_request(conversation(system, 1)))["usage"]
    # The system prompt is read; the first turn (up to the assistant's answer) written.
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert 0 < second["cache_creation_input_tokens"] < 100
    third = messages_body(_messages_request(conversation(system, 2)))["usage"]
    assert third["cache_read_input_tokens"] == (
        second["cache_read_input_tokens"] + second["cache_creation_input_tokens"]
    )
    # Without markers nothing is cached, however often the prefix repeats.
    for _ in range(2):
        unmarked = messages_body(_messages_request(conversation(system, 2), breakpoints=False))
    assert unmarked["usage"]["cache_read_input_tokens"] == 0
    assert unmarked["usage"]["cache_creation_input_tokens"] == 0


def test_fake_anthropic_finds_an_entry_only_within_twenty_blocks_of_a_marker():
    messages = conversation(text_of(3000), 1)
    messages_body(_messages_request(messages))  # writes up to the first answer
    with_fourth = _messages_request(messages + agent_step(25))
    read = messages_body(with_fourth)["usage"]["cache_read_input_tokens"]

    fake_cache.prompt_caches_clear()
    messages_body(_messages_request(messages))
    without_fourth = json.loads(json.dumps(with_fourth))
    del without_fourth["messages"][1]["content"][0]["cache_control"]
    read_without = messages_body(without_fourth)["usage"]["cache_read_input_tokens"]
    # The fourth marker reaches the last turn's entry; without it only the system
    # prompt's entry lies within reach of a marker.
    assert read > read_without > 0


def test_fake_anthropic_refuses_what_the_messages_api_refuses():
    request = _messages_request(conversation(text_of(3000), 3))
    for message in request["messages"]:
        message["content"][0]["cache_control"] = {"type": "ephemeral"}
    with pytest.raises(fake_cache.CacheMarkerError, match="maximum of 4"):
        messages_body(request)
    empty = {
        "model": SONNET,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}],
            }
        ],
    }
    with pytest.raises(fake_cache.CacheMarkerError, match="empty text"):
        messages_body(empty)


def test_fake_anthropic_caches_nothing_below_the_minimum():
    system = [{"type": "text", "text": text_of(2000), "cache_control": EPHEMERAL}]
    messages = [{"role": "user", "content": "Hello?"}]
    haiku = {"model": "claude-haiku-4-5", "system": system, "messages": messages}
    for _ in range(2):
        usage = messages_body(haiku)["usage"]
    assert usage["cache_read_input_tokens"] == usage["cache_creation_input_tokens"] == 0
    sonnet = {**haiku, "model": SONNET}
    assert messages_body(sonnet)["usage"]["cache_creation_input_tokens"] > 2000
    assert messages_body(sonnet)["usage"]["cache_read_input_tokens"] > 2000
