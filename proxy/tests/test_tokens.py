"""Token counting: real encodings, offline, with OpenAI's chat accounting."""

from __future__ import annotations

import pytest

from proxy.tokens import (
    CL100K,
    O200K,
    count_message_tokens,
    count_tokens,
    encoding_name_for_model,
)


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-2024-08-06",
        "gpt-4.1-nano",
        "o1",
        "o3-mini",
        "o4-mini",
        "gpt-5",
        "openai/gpt-4o",
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",
        "chatgpt-4o-latest",
    ],
)
def test_current_openai_families_use_o200k_base(model):
    assert encoding_name_for_model(model) == O200K


@pytest.mark.parametrize(
    "model",
    ["gpt-4", "gpt-4-turbo", "gpt-4-0613", "gpt-3.5-turbo", "text-embedding-3-small",
     "text-embedding-ada-002", "azure/gpt-35-turbo"],
)  # fmt: skip
def test_older_openai_families_use_cl100k_base(model):
    assert encoding_name_for_model(model) == CL100K


def test_claude_models_are_approximated_with_cl100k_base():
    assert encoding_name_for_model("claude-3-5-sonnet-latest") == CL100K
    assert encoding_name_for_model("anthropic/claude-sonnet-4") == CL100K


def test_unknown_models_default_to_o200k_base():
    assert encoding_name_for_model("some-new-model") == O200K
    assert encoding_name_for_model("") == O200K


def test_counts_match_tiktoken_ids_for_both_encodings():
    # OpenAI's cookbook: "tiktoken is great!" is 6 tokens in both encodings.
    assert count_tokens("tiktoken is great!", encoding=CL100K) == 6
    assert count_tokens("tiktoken is great!", encoding=O200K) == 6
    # The encodings differ on other text, so the model really selects the tokenizer.
    sample = "Приветствую! 日本語のテキストも数えます。"
    assert count_tokens(sample, model="gpt-4") != count_tokens(sample, model="gpt-4o")


def test_empty_text_has_no_tokens():
    assert count_tokens("", model="gpt-4o") == 0


def test_special_token_strings_count_as_plain_text():
    assert count_tokens("<|endoftext|>", encoding=CL100K) > 1


def test_lone_surrogates_are_counted_instead_of_raising():
    assert count_tokens("broken \ud800 escape", encoding=O200K) > 0


def test_unknown_encoding_is_rejected():
    with pytest.raises(ValueError, match="unknown encoding"):
        count_tokens("hello", encoding="p50k_base")


def test_message_tokens_follow_openai_per_message_overhead():
    messages = [{"role": "user", "content": "hello world"}]
    # 3 per message + "user" (1) + "hello world" (2) + 3 to prime the reply.
    assert count_message_tokens(messages, model="gpt-4o") == 9
    named = [{"role": "user", "name": "alice", "content": "hello world"}]
    assert (
        count_message_tokens(named, model="gpt-4o") == 9 + count_tokens("alice", model="gpt-4o") + 1
    )


def test_content_parts_are_counted_by_their_text():
    as_string = [{"role": "user", "content": "describe this picture"}]
    as_parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "describe this picture"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        }
    ]
    assert count_message_tokens(as_parts, model="gpt-4o") == count_message_tokens(
        as_string, model="gpt-4o"
    )


def test_tool_calls_are_counted():
    plain = [{"role": "assistant", "content": None}]
    with_call = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        }
    ]
    assert count_message_tokens(with_call, model="gpt-4o") > count_message_tokens(
        plain, model="gpt-4o"
    )
