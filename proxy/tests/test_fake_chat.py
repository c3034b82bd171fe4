"""The fake upstream answers tools, structured output, n, log probabilities and base64
embeddings as OpenAI does: the in-process bodies and chunks, checked field by field."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct

import jsonschema
import pytest

from proxy.providers.base import Target, UpstreamError
from proxy.providers.fake import FakeProvider, chat_body, chat_chunks, embedding_body
from proxy.providers.fake_chat import FakeRequestError

MODEL = "gpt-4o-mini"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "lookupStockPrice", "description": "A quote"}},
]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def calls_of(body: dict, choice: int = 0) -> list[dict]:
    return body["choices"][choice]["message"].get("tool_calls") or []


def assemble(chunks) -> dict[int, dict]:
    """Each choice of a stream put back together, as a client's accumulator does."""
    choices: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            state = choices.setdefault(
                choice["index"], {"content": "", "calls": {}, "finish": None, "logprobs": []}
            )
            delta = choice["delta"]
            state["content"] += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                merged = state["calls"].setdefault(call["index"], {"name": "", "arguments": ""})
                merged["id"] = call.get("id", merged.get("id"))
                merged["name"] += (call.get("function") or {}).get("name") or ""
                merged["arguments"] += (call.get("function") or {}).get("arguments") or ""
                merged["argument_chunks"] = merged.get("argument_chunks", 0) + bool(
                    (call.get("function") or {}).get("arguments")
                )
            if choice["logprobs"]:
                state["logprobs"] += choice["logprobs"]["content"]
            state["finish"] = choice["finish_reason"] or state["finish"]
    return choices


def test_offered_tools_are_called_on_a_user_turn_with_arguments_valid_for_the_schema():
    answer = chat_body(
        {"messages": user("What is the weather in Oslo?"), "tools": TOOLS}, model=MODEL
    )
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = calls_of(answer)
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER_SCHEMA)


def test_every_mentioned_tool_is_called_unless_parallel_calls_are_off():
    request = {"messages": user("the weather, and the stock price of ACME"), "tools": TOOLS}
    names = [c["function"]["name"] for c in calls_of(chat_body(request, model=MODEL))]
    assert names == ["get_weather", "lookupStockPrice"]
    single = chat_body({**request, "parallel_tool_calls": False}, model=MODEL)
    assert [c["function"]["name"] for c in calls_of(single)] == ["get_weather"]


def test_the_first_tool_is_called_when_none_is_mentioned():
    answer = chat_body({"messages": user("hello there"), "tools": TOOLS}, model=MODEL)
    assert [c["function"]["name"] for c in calls_of(answer)] == ["get_weather"]


def test_auto_answers_in_prose_after_a_tool_result_and_required_calls_again():
    first = chat_body({"messages": user("weather in Oslo?"), "tools": TOOLS}, model=MODEL)
    [call] = calls_of(first)
    history = [
        *user("weather in Oslo?"),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 degrees"},
    ]
    answer = chat_body({"messages": history, "tools": TOOLS}, model=MODEL)
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert "Sunny, 21 degrees" in answer["choices"][0]["message"]["content"]
    assert "tool_calls" not in answer["choices"][0]["message"]
    again = chat_body({"messages": history, "tools": TOOLS, "tool_choice": "required"}, model=MODEL)
    assert calls_of(again)


def test_none_never_calls_and_a_named_function_is_the_only_one_called():
    request = {"messages": user("the weather and the stock price"), "tools": TOOLS}
    prose = chat_body({**request, "tool_choice": "none"}, model=MODEL)
    assert "tool_calls" not in prose["choices"][0]["message"]
    assert prose["choices"][0]["message"]["content"].startswith("This is a fake answer")
    named = {"type": "function", "function": {"name": "lookupStockPrice"}}
    answer = chat_body({**request, "tool_choice": named}, model=MODEL)
    assert [c["function"]["name"] for c in calls_of(answer)] == ["lookupStockPrice"]
    assert json.loads(calls_of(answer)[0]["function"]["arguments"]) == {}


def test_allowed_tools_restricts_which_tools_may_be_called():
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "lookupStockPrice"}}],
        },
    }
    request = {"messages": user("weather?"), "tools": TOOLS, "tool_choice": choice}
    assert [c["function"]["name"] for c in calls_of(chat_body(request, model=MODEL))] == [
        "lookupStockPrice"
    ]


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, None),
        ({"tools": "get_weather"}, "tools"),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"$ref": "#/x"}}}
                ]
            },
            "tools",
        ),
        ({"response_format": {"type": "json_object"}}, "messages"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, None),
        ({"logprobs": False, "top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ],
)
def test_requests_the_real_api_refuses_are_refused(request_fields, param):
    body = {"messages": user("hi"), "tools": TOOLS, **request_fields}
    with pytest.raises(FakeRequestError) as caught:
        chat_body(body, model=MODEL)
    if param:
        assert caught.value.param == param
    with pytest.raises(FakeRequestError):
        chat_chunks(body, model=MODEL)


def test_tool_choice_without_tools_is_refused():
    with pytest.raises(FakeRequestError):
        chat_body({"messages": user("hi"), "tool_choice": "required"}, model=MODEL)


def test_a_refused_request_is_an_upstream_400_for_the_proxy():
    target = Target(provider="fake", upstream_model=MODEL)
    body = {"messages": user("hi"), "tools": TOOLS, "tool_choice": "sometimes"}
    with pytest.raises(UpstreamError) as caught:
        asyncio.run(FakeProvider().chat(target, body))
    assert caught.value.upstream_status == 400
    assert caught.value.code == "invalid_request_error"
    assert "tool_choice" in caught.value.message


def test_streamed_tool_calls_arrive_as_openai_deltas_with_arguments_in_pieces():
    request = {"messages": user("weather and stock price"), "tools": TOOLS}
    whole = chat_body(request, model=MODEL)
    chunks = list(chat_chunks({**request, "stream": True}, model=MODEL))
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["tool_calls"][0]["function"]["arguments"] == ""
    [choice] = assemble(chunks).values()
    assert choice["finish"] == "tool_calls" and choice["content"] == ""
    calls = [choice["calls"][i] for i in sorted(choice["calls"])]
    assert [c["name"] for c in calls] == [c["function"]["name"] for c in calls_of(whole)]
    assert [c["arguments"] for c in calls] == [c["function"]["arguments"] for c in calls_of(whole)]
    assert calls[0]["argument_chunks"] >= 3
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_n_choices_are_answered_and_streamed_with_their_indexes():
    request = {"messages": user("tell me three things"), "n": 3}
    whole = chat_body(request, model=MODEL)
    assert [c["index"] for c in whole["choices"]] == [0, 1, 2]
    texts = [c["message"]["content"] for c in whole["choices"]]
    assert len(set(texts)) == 3
    streamed = assemble(chat_chunks({**request, "stream": True}, model=MODEL))
    assert [streamed[i]["content"] for i in range(3)] == texts
    indexes = [c["choices"][0]["index"] for c in chat_chunks(request, model=MODEL) if c["choices"]]
    assert indexes[:3] == [0, 1, 2]  # interleaved, as a client must be ready for
    usage = whole["usage"]
    assert (
        usage["completion_tokens"]
        > chat_body({"messages": user("tell me three things")}, model=MODEL)["usage"][
            "completion_tokens"
        ]
    )


def test_log_probabilities_are_a_well_formed_distribution_over_the_content():
    request = {"messages": user("naïve café 🎉 ok"), "logprobs": True, "top_logprobs": 4}
    choice = chat_body(request, model=MODEL)["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    for entry in entries:
        assert bytes(entry["bytes"]).decode() == entry["token"]
        top = entry["top_logprobs"]
        assert len(top) == 4 and top[0]["token"] == entry["token"]
        assert top[0]["logprob"] == entry["logprob"] < 0
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert len({t["token"] for t in top}) == 4
        assert sum(math.exp(t["logprob"]) for t in top) <= 1
    streamed = assemble(chat_chunks({**request, "stream": True}, model=MODEL))[0]
    assert streamed["logprobs"] == entries
    assert chat_body(request, model=MODEL)["choices"][0]["logprobs"] == choice["logprobs"]


def test_no_log_probabilities_unless_asked():
    choice = chat_body({"messages": user("hi")}, model=MODEL)["choices"][0]
    assert choice["logprobs"] is None
    listed = chat_body({"messages": user("hi"), "logprobs": True}, model=MODEL)["choices"][0]
    assert all(entry["top_logprobs"] == [] for entry in listed["logprobs"]["content"])


def test_json_schema_format_answers_a_document_valid_for_the_schema():
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA, "strict": True},
    }
    request = {"messages": user("weather?"), "response_format": response_format}
    choice = chat_body(request, model=MODEL)["choices"][0]
    assert choice["finish_reason"] == "stop"
    jsonschema.validate(json.loads(choice["message"]["content"]), WEATHER_SCHEMA)
    streamed = assemble(chat_chunks({**request, "stream": True}, model=MODEL))[0]
    assert streamed["content"] == choice["message"]["content"]


def test_json_object_format_answers_an_object_when_the_messages_ask_for_json():
    request = {"messages": user("Reply in JSON please"), "response_format": {"type": "json_object"}}
    document = json.loads(chat_body(request, model=MODEL)["choices"][0]["message"]["content"])
    assert isinstance(document, dict) and "Reply in JSON please" in document["answer"]


def test_tool_definitions_count_as_prompt_tokens():
    bare = chat_body({"messages": user("hi"), "tool_choice": "none"}, model=MODEL)
    with_tools = chat_body(
        {"messages": user("hi"), "tools": TOOLS, "tool_choice": "none"}, model=MODEL
    )
    assert with_tools["usage"]["prompt_tokens"] > bare["usage"]["prompt_tokens"]


def _decoded(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


@pytest.mark.parametrize("dimensions", [None, 8, 256, 1536])
def test_base64_embeddings_are_little_endian_float32_of_the_float_vector(dimensions):
    request = {"input": ["alpha", "beta"], **({"dimensions": dimensions} if dimensions else {})}
    floats = embedding_body(request, model="text-embedding-3-small")["data"]
    packed = embedding_body(
        {**request, "encoding_format": "base64"}, model="text-embedding-3-small"
    )
    for as_floats, as_base64 in zip(floats, packed["data"], strict=True):
        vector = _decoded(as_base64["embedding"])
        assert len(vector) == (dimensions or 16) == len(as_floats["embedding"])
        assert vector == pytest.approx(as_floats["embedding"], abs=1e-6)
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1, abs=1e-4)


def test_long_embeddings_do_not_repeat_themselves():
    vector = embedding_body({"input": "alpha", "dimensions": 96}, model="m")["data"][0]["embedding"]
    assert vector[:32] != vector[32:64]


def test_token_array_inputs_are_one_input_each():
    body = embedding_body({"input": [[1, 2, 3], [4, 5]]}, model="m")
    assert len(body["data"]) == 2 and body["usage"]["prompt_tokens"] == 5
    single = embedding_body({"input": [10, 11, 12, 13]}, model="m")
    assert len(single["data"]) == 1 and single["usage"]["prompt_tokens"] == 4


def test_embedding_dimensions_beyond_the_largest_model_are_refused():
    with pytest.raises(FakeRequestError) as caught:
        embedding_body({"input": "x", "dimensions": 100_000}, model="m")
    assert caught.value.param == "dimensions"
