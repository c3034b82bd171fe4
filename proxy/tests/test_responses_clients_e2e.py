"""The Responses API from other clients on a live server: the Node openai SDK and
LangChain's ChatOpenAI with ``use_responses_api=True``."""

from __future__ import annotations

import json
import os
import subprocess
import time

import jsonschema
import pytest
from pydantic import BaseModel

from billing.models import UsageEvent
from billing.usage import usage_flush_run
from proxy.tests.test_fake_features_e2e import node_openai  # noqa: F401 (a fixture)
from proxy.tests.test_responses_e2e import WEATHER

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

NODE_SCRIPT = """
import OpenAI from "openai";
const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY,
  maxRetries: 0 });
const plain = await client.responses.create({ model: "gpt-4o", input: "Hello from Node" });
const again = await client.responses.create({ model: "gpt-4o", input: "And again",
  previous_response_id: plain.id });
const fetched = await client.responses.retrieve(again.id);
const stream = await client.responses.create({ model: "gpt-4o", input: "stream from Node",
  stream: true, store: false });
const types = []; let streamed = ""; let completed = null;
for await (const event of stream) {
  types.push(event.type);
  if (event.type === "response.output_text.delta") streamed += event.delta;
  if (event.type === "response.completed") completed = event.response;
}
const tools = await client.responses.create({ model: "gpt-4o", input: "Weather in Rome?",
  tools: [TOOL], store: false });
const call = tools.output.find((item) => item.type === "function_call");
console.log(JSON.stringify({ text: plain.output_text, previous: again.previous_response_id,
  plainId: plain.id, fetchedText: fetched.output_text, againText: again.output_text,
  types, streamed, completedText: completed.output[0].content[0].text,
  outputTokens: completed.usage.output_tokens, call }));
"""


def test_the_node_sdk_creates_streams_continues_and_retrieves_responses(
    proxy_url,
    alice_key,
    node_openai,  # noqa: F811
):
    script = node_openai / "responses.mjs"
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
    assert "Hello from Node" in answer["text"]
    assert answer["previous"] == answer["plainId"]
    assert answer["fetchedText"] == answer["againText"]
    assert answer["types"][0] == "response.created"
    assert answer["types"][-1] == "response.completed"
    assert answer["streamed"] == answer["completedText"]
    assert "stream" in answer["streamed"]
    assert answer["outputTokens"] > 0
    assert answer["call"]["name"] == "get_weather"
    jsonschema.validate(json.loads(answer["call"]["arguments"]), WEATHER["parameters"])


class City(BaseModel):
    city: str
    population: int


def _langchain(proxy_url: str, key: str):
    langchain_openai = pytest.importorskip("langchain_openai")
    return langchain_openai.ChatOpenAI(
        model="gpt-4o",
        base_url=f"{proxy_url}/v1",
        api_key=key,
        use_responses_api=True,
        max_retries=0,
    )


def test_langchain_chat_openai_on_the_responses_api_invokes_streams_and_calls_tools(
    proxy_url, org_a, alice_key
):
    model = _langchain(proxy_url, alice_key)
    before = UsageEvent.objects.filter(organization=org_a, endpoint="responses").count()

    message = model.invoke("Hello from LangChain")
    assert "LangChain" in message.text
    assert message.usage_metadata["output_tokens"] > 0

    streamed = "".join(chunk.text for chunk in model.stream("stream from LangChain"))
    assert "stream" in streamed

    with_tools = model.bind_tools([WEATHER]).invoke("What is the weather in Lima?")
    assert with_tools.tool_calls[0]["name"] == "get_weather"
    assert "city" in with_tools.tool_calls[0]["args"]

    structured = model.with_structured_output(City).invoke("Name a large city")
    assert isinstance(structured, City)

    # Accounting runs after each answer: flush as the Celery worker would until all four show.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        usage_flush_run()
        after = UsageEvent.objects.filter(organization=org_a, endpoint="responses").count()
        if after - before >= 4:
            break
        time.sleep(0.2)
    assert after - before == 4
