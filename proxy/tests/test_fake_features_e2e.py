"""What a developer building offline sees through the proxy with the official SDKs: tool
calls, structured output, n, log probabilities and base64 embeddings, from the
in-process fake (the default provider) and from the HTTP fake upstream (a route)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from proxy.tests.test_openai_sdk_e2e import sdk, wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_local_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


class Step(BaseModel):
    explanation: str
    output: str


class MathAnswer(BaseModel):
    steps: list[Step]
    final_answer: str
    confidence: float = Field(ge=0, le=1)


@pytest.fixture(params=["in-process", "http"])
def model(request, route_to):
    """The same checks against the in-process fake and the HTTP fake upstream."""
    if request.param == "in-process":
        return "gpt-4o-mini"
    route_to("fake-http-tools", ("gpt-4o-mini", 0))
    return "fake-http-tools"


def test_a_tool_round_trip_calls_the_tool_then_answers_from_its_result(proxy_url, alice_key, model):
    client = sdk(proxy_url, alice_key)
    messages = [{"role": "user", "content": "What is the weather in Lisbon?"}]
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=messages, tools=[WEATHER, CLOCK]
    )
    first = raw.parse()
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.prompt_tokens == first.usage.prompt_tokens > 0
    assert event.completion_tokens == first.usage.completion_tokens > 0

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Clear skies and 24 degrees"},
    ]
    final = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER, CLOCK])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.tool_calls is None
    assert "Clear skies and 24 degrees" in final.choices[0].message.content


def test_streamed_parallel_tool_calls_accumulate_in_the_sdk(proxy_url, alice_key, model):
    client = sdk(proxy_url, alice_key)
    with client.chat.completions.stream(
        model=model,
        messages=[{"role": "user", "content": "The weather and the local time in Oslo?"}],
        tools=[WEATHER, CLOCK],
    ) as stream:
        argument_deltas = sum(
            1 for event in stream if event.type == "tool_calls.function.arguments.delta"
        )
        completion = stream.get_final_completion()
    calls = completion.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_local_time"]
    assert len({c.id for c in calls}) == 2
    jsonschema.validate(json.loads(calls[0].function.arguments), WEATHER["function"]["parameters"])
    assert argument_deltas >= 4  # each call's arguments arrive in several chunks
    assert completion.choices[0].finish_reason == "tool_calls"

    single = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "The weather and the local time in Oslo?"}],
        tools=[WEATHER, CLOCK],
        parallel_tool_calls=False,
    )
    assert len(single.choices[0].message.tool_calls) == 1


def test_tool_choice_none_and_named_are_honoured(proxy_url, alice_key, model):
    client = sdk(proxy_url, alice_key)
    messages = [{"role": "user", "content": "What is the weather in Rome?"}]
    prose = client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER, CLOCK], tool_choice="none"
    )
    assert prose.choices[0].message.tool_calls is None
    assert "Rome" in prose.choices[0].message.content
    named = client.chat.completions.create(
        model=model,
        messages=messages,
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_local_time"}},
    )
    assert [c.function.name for c in named.choices[0].message.tool_calls] == ["get_local_time"]


def test_a_tool_choice_naming_no_offered_tool_is_a_400_in_openai_format(
    proxy_url, alice_key, model
):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(proxy_url, alice_key).chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "hi"}],
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "launch_rocket"}},
        )
    assert "launch_rocket" in caught.value.message


def test_parse_with_a_pydantic_model_gets_a_valid_instance(proxy_url, alice_key, model):
    client = sdk(proxy_url, alice_key)
    completion = client.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Solve 8x + 7 = -23"}],
        response_format=MathAnswer,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, MathAnswer)
    assert parsed.steps and isinstance(parsed.steps[0], Step)
    assert 0 <= parsed.confidence <= 1

    beta = client.beta.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Solve 2x = 4"}],
        tools=[openai.pydantic_function_tool(MathAnswer, name="record_answer")],
        tool_choice="required",
    )
    [call] = beta.choices[0].message.tool_calls
    assert isinstance(call.function.parsed_arguments, MathAnswer)


def test_structured_stream_parses_in_the_sdk(proxy_url, alice_key, model):
    with sdk(proxy_url, alice_key).chat.completions.stream(
        model=model,
        messages=[{"role": "user", "content": "Solve 3x = 9"}],
        response_format=MathAnswer,
    ) as stream:
        completion = stream.get_final_completion()
    assert isinstance(completion.choices[0].message.parsed, MathAnswer)


def test_json_object_mode_answers_json(proxy_url, alice_key, model):
    completion = sdk(proxy_url, alice_key).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "List two colours as JSON"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_n_choices_come_back_and_stream_with_their_indexes(proxy_url, alice_key, model):
    client = sdk(proxy_url, alice_key)
    messages = [{"role": "user", "content": "Suggest a name for a cat"}]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, n=3)
    completion = raw.parse()
    assert [c.index for c in completion.choices] == [0, 1, 2]
    texts = [c.message.content for c in completion.choices]
    assert len(set(texts)) == 3
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.completion_tokens == completion.usage.completion_tokens

    streamed = ["", "", ""]
    for chunk in client.chat.completions.create(model=model, messages=messages, n=3, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert streamed == texts


def test_logprobs_describe_the_content_tokens(proxy_url, alice_key, model):
    completion = sdk(proxy_url, alice_key).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say something short"}],
        logprobs=True,
        top_logprobs=3,
    )
    choice = completion.choices[0]
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content
    assert all(len(t.top_logprobs) == 3 and t.top_logprobs[0].token == t.token for t in tokens)
    assert all(t.logprob < 0 for t in tokens)


def _floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_embeddings_in_base64_decode_to_the_asked_dimensions(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["alpha", "beta"], dimensions=64
    )
    decoded = raw.parse()  # the SDK asked for base64 itself, and decoded it
    assert [len(item.embedding) for item in decoded.data] == [64, 64]
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.prompt_tokens == decoded.usage.prompt_tokens > 0

    explicit = client.embeddings.create(
        model="text-embedding-3-small", input="alpha", dimensions=64, encoding_format="base64"
    )
    assert isinstance(explicit.data[0].embedding, str)
    floats = client.embeddings.create(
        model="text-embedding-3-small", input="alpha", dimensions=64, encoding_format="float"
    )
    assert _floats(explicit.data[0].embedding) == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)


NODE_SCRIPT = """
import OpenAI from "openai";
const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY,
                            maxRetries: 0 });
const packed = await client.embeddings.create({
  model: "text-embedding-3-small", input: ["alpha", "beta"], dimensions: 48 });
const plain = await client.embeddings.create({
  model: "text-embedding-3-small", input: "alpha", dimensions: 48, encoding_format: "float" });
const tools = await client.chat.completions.create({
  model: "gpt-4o-mini", messages: [{ role: "user", content: "weather in Lima?" }],
  tools: [TOOL] });
console.log(JSON.stringify({
  lengths: packed.data.map((item) => item.embedding.length),
  packed: packed.data[0].embedding, plain: plain.data[0].embedding,
  call: tools.choices[0].message.tool_calls[0].function }));
"""
NODE_OPENAI = "openai@7.59.0"


@pytest.fixture(scope="session")
def node_openai(tmp_path_factory):
    """A directory with the Node SDK installed from npm, or a skip saying why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed: the Node SDK test cannot run")
    directory = tmp_path_factory.mktemp("node-openai")
    (directory / "package.json").write_text('{"name": "proxy-node-test", "private": true}')
    installed = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", NODE_OPENAI],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0:
        pytest.skip(f"npm could not install {NODE_OPENAI}: {installed.stderr[-500:]}")
    return directory


def test_the_node_sdk_decodes_base64_embeddings_and_reads_tool_calls(
    proxy_url, alice_key, node_openai
):
    script = node_openai / "embeddings.mjs"
    script.write_text(NODE_SCRIPT.replace("TOOL", json.dumps(WEATHER)))
    result = subprocess.run(
        ["node", str(script)],
        cwd=node_openai,
        env={**os.environ, "BASE_URL": f"{proxy_url}/v1", "API_KEY": alice_key},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["lengths"] == [48, 48]
    assert answer["packed"] == pytest.approx(answer["plain"], abs=1e-6)
    assert answer["call"]["name"] == "get_weather"
    jsonschema.validate(json.loads(answer["call"]["arguments"]), WEATHER["function"]["parameters"])
