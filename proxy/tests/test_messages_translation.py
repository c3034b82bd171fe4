"""Anthropic Messages <-> chat completions, as pure functions; every output is checked
against the official ``anthropic`` SDK's own types."""

from __future__ import annotations

import json

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter
from rest_framework.exceptions import ValidationError

from common.errors import InvalidRequest
from proxy.adapters.anthropic_messages import (
    chat_request,
    message_from_chat,
    messages_usage,
)
from proxy.adapters.anthropic_validation import MessagesRequestSerializer
from proxy.serializers import ChatCompletionRequestSerializer, validate_request

EVENT = TypeAdapter(RawMessageStreamEvent)
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def valid(body: dict) -> dict:
    MessagesRequestSerializer(data=body).is_valid(raise_exception=True)
    return body


def translated(body: dict) -> dict:
    chat = chat_request(valid(body))
    # What the chat pipeline will check: the translation must always pass it.
    validate_request(ChatCompletionRequestSerializer, chat)
    return chat


def test_system_blocks_messages_and_sampling_fields_become_a_chat_body():
    chat = translated(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 300,
            "system": [
                {"type": "text", "text": "You are terse."},
                {
                    "type": "text",
                    "text": "Answer in French.",
                    "cache_control": {"type": "ephemeral"},
                },
            ],
            "messages": [
                {"role": "user", "content": "Bonjour"},
                {"role": "assistant", "content": [{"type": "text", "text": "Salut"}]},
                {"role": "user", "content": [{"type": "text", "text": "Ça va ?"}]},
            ],
            "stop_sequences": ["END"],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 5,
            "metadata": {"user_id": "user-42"},
            "stream": True,
        }
    )
    assert chat == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "stream": True,
        "messages": [
            {"role": "system", "content": "You are terse.\n\nAnswer in French."},
            {"role": "user", "content": "Bonjour"},
            {"role": "assistant", "content": "Salut"},
            {"role": "user", "content": [{"type": "text", "text": "Ça va ?"}]},
        ],
        "stop": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "user-42",
    }


def test_tool_use_and_tool_results_become_tool_calls_and_tool_messages_in_order():
    chat = translated(
        {
            "model": "m",
            "max_tokens": 100,
            "tools": [WEATHER],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "messages": [
                {"role": "user", "content": "Weather in Oslo and Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "two calls", "signature": "x"},
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Oslo"},
                        },
                        {
                            "type": "tool_use",
                            "id": "toolu_2",
                            "name": "get_weather",
                            "input": {"city": "Rome"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Snow, -3"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "content": [{"type": "text", "text": "timeout"}],
                            "is_error": True,
                        },
                        {"type": "text", "text": "Summarise."},
                    ],
                },
            ],
        }
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "The weather in a city",
            },
        }
    ]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assistant, first, second, user = chat["messages"][1:]
    assert assistant["content"] == "Checking."
    assert [c["id"] for c in assistant["tool_calls"]] == ["toolu_1", "toolu_2"]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
    assert first == {"role": "tool", "tool_call_id": "toolu_1", "content": "Snow, -3"}
    assert second == {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: timeout"}
    assert user == {"role": "user", "content": [{"type": "text", "text": "Summarise."}]}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice_translates(choice, expected):
    chat = translated(
        {
            "model": "m",
            "max_tokens": 10,
            "tools": [WEATHER],
            "tool_choice": choice,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    assert chat["tool_choice"] == expected
    assert "parallel_tool_calls" not in chat


def test_images_become_image_url_parts_from_base64_and_url_sources():
    chat = translated(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/jpeg",
                                "data": "QUJD",
                            },
                        },
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/a.png"},
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        }
    )
    parts = chat["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}
    assert parts[1]["image_url"]["url"] == "https://example.com/a.png"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        (
            {"model": "m", "max_tokens": "5", "messages": [{"role": "user", "content": "hi"}]},
            "max_tokens",
        ),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "tool_use"}]}],
            },
            "messages",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
                "temperature": 1.5,
            },
            "temperature",
        ),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, "model"),
    ],
)
def test_invalid_requests_name_the_field(body, field):
    serializer = MessagesRequestSerializer(data=body)
    assert not serializer.is_valid()
    assert field in serializer.errors
    with pytest.raises(ValidationError):
        serializer.is_valid(raise_exception=True)


def test_a_server_tool_is_refused_with_a_message_saying_why():
    serializer = MessagesRequestSerializer(
        data={
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        }
    )
    assert not serializer.is_valid()
    assert "server tools" in str(serializer.errors["tools"])


def test_a_conversation_of_only_thinking_is_refused():
    with pytest.raises(InvalidRequest):
        chat_request(
            valid(
                {
                    "model": "m",
                    "max_tokens": 5,
                    "messages": [
                        {
                            "role": "assistant",
                            "content": [{"type": "redacted_thinking", "data": "x"}],
                        }
                    ],
                }
            )
        )


def test_a_chat_answer_with_text_and_tool_calls_is_a_message_the_sdk_parses():
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }
    message = Message.model_validate(message_from_chat(answer, model="claude-x"))
    assert message.model == "claude-x"
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "text" and message.content[0].text == "Let me check."
    tool = message.content[1]
    assert tool.type == "tool_use" and tool.id == "call_1" and tool.input == {"city": "Oslo"}
    assert message.usage.input_tokens == 20
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.output_tokens == 15


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_finish_reasons_map_to_stop_reasons(finish, reason):
    answer = {"choices": [{"message": {"content": "x"}, "finish_reason": finish}], "usage": {}}
    assert message_from_chat(answer, model="m")["stop_reason"] == reason


def test_usage_keeps_cache_writes_apart_from_fresh_input():
    usage = messages_usage(
        {"prompt_tokens": 1000, "completion_tokens": 5, "cache_creation_input_tokens": 900}
    )
    assert usage == {
        "input_tokens": 100,
        "output_tokens": 5,
        "cache_creation_input_tokens": 900,
        "cache_read_input_tokens": 0,
    }


def test_documents_become_text_or_a_pdf_file_part_and_url_documents_are_refused():
    chat = translated(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "title": "Policy",
                            "source": {
                                "type": "text",
                                "media_type": "text/plain",
                                "data": "No refunds.",
                            },
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0x",
                            },
                        },
                        {"type": "text", "text": "Summarise."},
                    ],
                }
            ],
        }
    )
    text, pdf, question = chat["messages"][0]["content"]
    assert text == {"type": "text", "text": "Policy\n\nNo refunds."}
    assert pdf["type"] == "file"
    assert pdf["file"]["file_data"] == "data:application/pdf;base64,JVBERi0x"
    assert question["text"] == "Summarise."
    serializer = MessagesRequestSerializer(
        data={
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "document", "source": {"type": "url", "url": "https://x"}}
                    ],
                }
            ],
        }
    )
    assert not serializer.is_valid()
    assert "url source" in str(serializer.errors)


def test_images_in_a_tool_result_follow_it_in_a_user_turn():
    chat = translated(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {"role": "user", "content": "Take a screenshot"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [
                                {"type": "text", "text": "Here it is"},
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "image/png",
                                        "data": "iVBO",
                                    },
                                },
                            ],
                        }
                    ],
                },
            ],
        }
    )
    tool, images = chat["messages"][2:]
    assert tool == {"role": "tool", "tool_call_id": "t1", "content": "Here it is"}
    assert images == {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}],
    }
