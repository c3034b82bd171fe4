"""The Responses API through the proxy with the official openai SDK on a live server."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from billing.models import Price, UsageEvent
from billing.pricing import Price as PriceRates
from billing.pricing import tokens_cost_micros, usage_tokens
from billing.selectors import price_cache_forget
from proxy.models import StoredResponse
from proxy.tests.test_openai_sdk_e2e import async_sdk, sdk, wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

GPT_4O = PriceRates(2_500_000, 10_000_000, 1_250_000)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


class City(BaseModel):
    city: str
    population: int


def event_usage(response) -> dict:
    return {
        "prompt_tokens": response.usage.input_tokens,
        "completion_tokens": response.usage.output_tokens,
    }


def _event(raw) -> UsageEvent:
    return wait_for_usage(raw.headers["x-request-id"])


def test_a_text_input_gets_a_response_object_and_one_usage_event_with_cost(
    proxy_url, bob_key, org_a
):
    # Priced here: a transactional test's database lost the seeded prices to an earlier
    # test's flush. The flush below prices the event as the Celery worker would.
    Price.objects.create(
        model_pattern="gpt-4o",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=GPT_4O.input_per_mtok_micros,
        output_per_mtok_micros=GPT_4O.output_per_mtok_micros,
    )
    price_cache_forget()
    raw = sdk(proxy_url, bob_key).responses.with_raw_response.create(
        model="gpt-4o", input="Say hello to Ada", instructions="Be brief.", store=False
    )
    response = raw.parse()

    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert "Ada" in response.output_text
    assert response.output[0].type == "message"
    assert response.instructions == "Be brief."
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert raw.headers["x-synthlang-cache"] in {"miss", "off", "hit"}
    assert "x-ratelimit-remaining-requests" in raw.headers
    event = _event(raw)
    assert (event.endpoint, event.organization_id, event.model) == ("responses", org_a.pk, "gpt-4o")
    assert event.prompt_tokens == response.usage.input_tokens
    assert event.completion_tokens == response.usage.output_tokens
    assert event.cost_micros == tokens_cost_micros(
        price=GPT_4O, tokens=usage_tokens(event_usage(response))
    )
    assert event.cost_micros > 0
    # store: false never writes.
    assert not StoredResponse.objects.filter(id=response.id).exists()


def test_input_items_with_system_and_assistant_turns_reach_the_model(proxy_url, alice_key):
    response = sdk(proxy_url, alice_key).responses.create(
        model="gpt-4o",
        input=[
            {"role": "developer", "content": "Answer in one line."},
            {"role": "user", "content": [{"type": "input_text", "text": "first question"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "first answer"}]},
            {"type": "message", "role": "user", "content": "second question about Turing"},
        ],
        store=False,
    )
    assert "Turing" in response.output_text


def test_the_async_client_gets_a_response(proxy_url, alice_key):
    async def run():
        async with async_sdk(proxy_url, alice_key) as client:
            return await client.responses.create(model="gpt-4o", input="async works", store=False)

    response = asyncio.run(run())
    assert "async works" in response.output_text


def test_a_streamed_response_sends_the_event_sequence_and_usage_at_the_end(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    raw = client.responses.with_raw_response.create(
        model="gpt-4o", input="stream me a few words", stream=True, store=False
    )
    events = list(raw.parse())
    types = [event.type for event in events]

    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "stream" in deltas
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == deltas
    completed = events[-1].response
    assert completed.output_text == deltas
    assert completed.usage.output_tokens > 0
    event = wait_for_usage(raw.headers["x-request-id"])
    assert (event.endpoint, event.stream) == ("responses", True)
    assert event.completion_tokens == completed.usage.output_tokens


def test_the_sdk_stream_helper_assembles_the_final_response(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    with client.responses.stream(model="gpt-4o", input="helper stream", store=False) as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(texts)
    assert final.status == "completed"


def test_a_function_call_then_its_output_in_a_second_turn(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    first = client.responses.create(
        model="gpt-4o", input="What is the weather in Paris?", tools=[WEATHER], store=False
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])

    second = client.responses.create(
        model="gpt-4o",
        tools=[WEATHER],
        store=False,
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
    )
    assert second.output[0].type == "message"
    assert "sunny" in second.output_text


def test_streamed_function_call_arguments_arrive_as_delta_and_done_events(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    events = list(
        client.responses.create(
            model="gpt-4o",
            input="Weather in Oslo?",
            tools=[WEATHER],
            tool_choice={"type": "function", "name": "get_weather"},
            stream=True,
            store=False,
        )
    )
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert deltas
    assert "".join(e.delta for e in deltas) == done.arguments
    jsonschema.validate(json.loads(done.arguments), WEATHER["parameters"])
    item = events[-1].response.output[-1]
    assert (item.type, item.name) == ("function_call", "get_weather")
    assert item.arguments == done.arguments


def test_structured_output_with_a_json_schema_validates(proxy_url, alice_key):
    response = sdk(proxy_url, alice_key).responses.create(
        model="gpt-4o",
        input="Name a large city",
        text={"format": {"type": "json_schema", "name": "city", "schema": CITY_SCHEMA}},
        store=False,
    )
    jsonschema.validate(json.loads(response.output_text), CITY_SCHEMA)
    assert response.text.format.type == "json_schema"


def test_responses_parse_returns_the_pydantic_model(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    if not hasattr(client.responses, "parse"):
        pytest.skip("this openai SDK has no responses.parse")
    parsed = client.responses.parse(
        model="gpt-4o", input="Name a large city", text_format=City, store=False
    )
    assert isinstance(parsed.output_parsed, City)


def test_previous_response_id_continues_the_conversation_and_get_returns_it(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    first = client.responses.create(model="gpt-4o", input="Remember the word Zanzibar")
    second = client.responses.create(
        model="gpt-4o", input="Which word did I ask you to remember?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    stored = StoredResponse.objects.get(id=second.id)
    sent = json.dumps(stored.conversation)
    assert "Zanzibar" in sent and "Which word" in sent  # both turns went upstream

    fetched = client.responses.retrieve(second.id)
    assert fetched.id == second.id
    assert fetched.output_text == second.output_text

    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o", input="again", previous_response_id=first.id)


def test_another_organizations_response_is_a_404(proxy_url, alice_key, charlie_key):
    mine = sdk(proxy_url, alice_key).responses.create(model="gpt-4o", input="private note")
    outsider = sdk(proxy_url, charlie_key)
    with pytest.raises(openai.NotFoundError):
        outsider.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        outsider.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        outsider.responses.create(model="gpt-4o", input="x", previous_response_id=mine.id)
    assert StoredResponse.objects.filter(id=mine.id).exists()


def test_a_streamed_response_is_stored_when_complete(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    with client.responses.stream(model="gpt-4o", input="stored stream") as stream:
        final = stream.get_final_response()
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_bad_requests_are_openai_errors_naming_the_field(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="gpt-4o", input="x", tools=[{"type": "web_search"}])
    assert raised.value.body["param"] == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="gpt-4o", input=[{"type": "function_call_output"}])
    assert raised.value.body["param"] == "input[0].call_id"
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o", input="x", temperature=5)
    with pytest.raises(openai.AuthenticationError):
        sdk(proxy_url, "sk-syn-not-a-key").responses.create(model="gpt-4o", input="x")
