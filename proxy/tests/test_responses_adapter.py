"""The Responses adapter in process: translation, the event sequence, storage and faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError
from django.test import AsyncClient

from billing import usage
from billing.models import UsageEvent
from common.errors import InvalidRequest
from proxy import gateway, tasks
from proxy.adapters import responses_store
from proxy.adapters.responses_answer import ResponseEvents
from proxy.adapters.responses_request import responses_request
from proxy.models import StoredResponse
from proxy.providers.base import UpstreamError
from proxy.providers.fake import FakeProvider
from proxy.tests.test_hot_path_queries import sql_counter  # noqa: F401 (a fixture)


def _request(body: dict, history: list | None = None):
    return responses_request(body, default_model="gpt-4o", history=history or [])


# --- Request translation ---------------------------------------------------------------


def test_items_become_chat_messages_with_one_assistant_turn_per_group_of_calls():
    parsed = _request(
        {
            "model": "m",
            "instructions": "Be terse.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "c2", "output": "rain"},
            ],
        },
        history=[{"role": "user", "content": "earlier"}],
    )
    messages = parsed.chat_body["messages"]
    assert messages[0] == {"role": "system", "content": "Be terse."}
    assert messages[1] == {"role": "user", "content": "earlier"}
    assert messages[2] == {"role": "user", "content": [{"type": "text", "text": "weather?"}]}
    assert messages[3]["role"] == "assistant"
    assert [call["id"] for call in messages[3]["tool_calls"]] == ["c1", "c2"]
    assert messages[4:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]
    # The instructions do not carry over to the next turn; the rest does.
    assert parsed.history == messages[1:]


def test_tools_tool_choice_format_and_sampling_map_to_chat_fields():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    parsed = _request(
        {
            "input": "hi",
            "tools": [{"type": "function", "name": "f", "parameters": schema, "strict": True}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "out", "schema": schema}},
            "max_output_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "user": "u-1",
            "metadata": {"ticket": "42"},
            "parallel_tool_calls": False,
            "prompt_cache_key": "tenant-7",
            "include": ["message.output_text.logprobs"],
        }
    )
    body = parsed.chat_body
    assert body["model"] == "gpt-4o"
    assert body["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": schema, "strict": True}}
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema},
    }
    assert (body["max_completion_tokens"], body["temperature"], body["top_p"]) == (50, 0.5, 0.9)
    assert body["user"] == "u-1"
    assert body["prompt_cache_key"] == "tenant-7"
    assert "include" not in body
    assert "metadata" not in body and "store" not in body  # the proxy's, not the upstream's
    assert parsed.metadata == {"ticket": "42"}
    assert parsed.store is True


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": 5}, "input"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "input[0].content[0]"),
        ({"input": "x", "tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"input": "x", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name"),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format"),
        ({"input": "x", "temperature": "hot"}, "temperature"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "metadata": {"k": 1}}, "metadata"),
        ({"input": "x", "store": "yes"}, "store"),
        ({"input": "x", "background": True}, "background"),
    ],
)
def test_requests_the_adapter_cannot_serve_are_a_400_naming_the_field(body, param):
    with pytest.raises(InvalidRequest) as raised:
        _request(body)
    assert raised.value.param == param
    assert raised.value.status == 400


# --- The event sequence ----------------------------------------------------------------


def _chunk(delta: dict | None = None, finish=None, usage=None) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"object": "chat.completion.chunk", "model": "m-1", "choices": choices, "usage": usage}


def test_text_then_a_tool_call_become_two_items_with_contiguous_sequence_numbers():
    events = ResponseEvents(_request({"input": "x"}), response_id="resp_1", created_at=1)
    emitted = events.start()
    call = {"index": 0, "id": "call_9", "function": {"name": "f", "arguments": ""}}
    for chunk in [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Let me "}),
        _chunk({"content": "check."}),
        _chunk({"tool_calls": [call]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        _chunk({}, finish="tool_calls"),
        _chunk(usage={"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}),
    ]:
        emitted += events.add(chunk)
    closing, final = events.finish()
    emitted += [*closing, final]

    assert [e["sequence_number"] for e in emitted] == list(range(len(emitted)))
    assert [e["type"] for e in emitted] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert emitted[2]["item"]["status"] == "in_progress"  # as it was when it was sent
    response = final["response"]
    assert response["model"] == "m-1"
    assert [item["type"] for item in response["output"]] == ["message", "function_call"]
    assert response["output"][0]["content"][0]["text"] == "Let me check."
    assert response["output"][1]["arguments"] == '{"a":1}'
    assert response["output"][1]["call_id"] == "call_9"
    assert response["usage"]["input_tokens"] == 7
    assert response["usage"]["output_tokens"] == 5


def test_a_stream_cut_by_max_output_tokens_ends_incomplete():
    events = ResponseEvents(_request({"input": "x"}), response_id="resp_2", created_at=1)
    events.start()
    events.add(_chunk({"content": "partial"}, finish="length"))
    _, final = events.finish()
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


# --- Storage ---------------------------------------------------------------------------


def _stored(organization, response_id: str, *, expires_in: timedelta) -> StoredResponse:
    stored = responses_store.stored_response_create(
        organization_id=organization.pk,
        api_key_id=None,
        response={"id": response_id, "object": "response", "model": "gpt-4o", "output": []},
        conversation=[{"role": "user", "content": "hi"}],
    )
    StoredResponse.objects.filter(pk=stored.pk).update(expires_at=datetime.now(tz=UTC) + expires_in)
    return stored


@pytest.mark.django_db(transaction=True)
def test_the_cleanup_task_deletes_expired_responses_and_they_are_gone_before_it_runs(
    org_a, alice_key
):
    _stored(org_a, "resp_old", expires_in=timedelta(seconds=-1))
    _stored(org_a, "resp_new", expires_in=timedelta(days=1))
    headers = {"Authorization": f"Bearer {alice_key}"}

    old = async_to_sync(AsyncClient().get)("/v1/responses/resp_old", headers=headers)
    assert old.status_code == 404  # past retention, even before the cleanup ran
    assert old.json()["error"]["code"] == "not_found"

    assert tasks.stored_responses_delete_expired() == 1
    assert list(StoredResponse.objects.values_list("id", flat=True)) == ["resp_new"]
    assert tasks.stored_responses_delete_expired() == 0

    deleted = async_to_sync(AsyncClient().delete)("/v1/responses/resp_new", headers=headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"id": "resp_new", "object": "response", "deleted": True}
    again = async_to_sync(AsyncClient().delete)("/v1/responses/resp_new", headers=headers)
    assert again.status_code == 404


@pytest.mark.django_db
def test_the_retention_setting_sets_the_expiry(settings, org_a):
    settings.RESPONSES_RETENTION_DAYS = 3
    stored = responses_store.stored_response_create(
        organization_id=org_a.pk, api_key_id=None, response={"id": "resp_r"}, conversation=[]
    )
    assert timedelta(days=2, hours=23) < stored.expires_at - stored.created_at <= timedelta(days=3)


# --- Faults ----------------------------------------------------------------------------


@pytest.fixture
def _offline(settings):
    settings.OPENAI_API_KEY = ""
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    usage.memory_buffer.clear()
    yield
    usage.memory_buffer.clear()


def _post(key: str, body: dict):
    async def request():
        response = await AsyncClient().post(
            "/v1/responses",
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}", "x-synthlang-cache": "off"},
        )
        content = b""
        if response.streaming:
            content = b"".join([part async for part in response.streaming_content])
        await asyncio.gather(*list(gateway._background))
        return response, content

    response, content = async_to_sync(request)()
    usage.usage_flush_run()
    return response, content


def _sse_events(content: bytes) -> list[dict]:
    return [
        json.loads(line[len(b"data: ") :])
        for line in content.split(b"\n")
        if line.startswith(b"data: ")
    ]


@pytest.mark.django_db(transaction=True)
def test_an_upstream_failure_mid_stream_ends_with_response_failed_and_is_accounted(
    _offline, monkeypatch, org_a, alice_key
):
    original = FakeProvider.chat_stream

    async def breaks_after_two_chunks(self, target, body):
        count = 0
        async for chunk in original(self, target, body):
            if count == 2:
                raise UpstreamError("upstream went away", upstream_status=502)
            count += 1
            yield chunk

    monkeypatch.setattr(FakeProvider, "chat_stream", breaks_after_two_chunks)
    response, content = _post(alice_key, {"input": "a long answer please", "stream": True})

    assert response.status_code == 200
    events = _sse_events(content)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["message"] == "upstream went away"
    assert not StoredResponse.objects.exists()  # a failed answer is not stored
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert (event.endpoint, event.status_code) == ("responses", 502)


@pytest.mark.django_db(transaction=True)
def test_an_upstream_failure_before_any_byte_is_an_openai_error(_offline, org_a, alice_key):
    response, _ = _post(alice_key, {"model": "fake-fail-503", "input": "hi", "stream": True})
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert (event.endpoint, event.status_code) == ("responses", 502)


@pytest.mark.django_db(transaction=True)
def test_stored_responses_unavailable_is_a_503_not_a_500(monkeypatch, org_a, alice_key):
    def database_down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(responses_store, "stored_response_get", database_down)
    response = async_to_sync(AsyncClient().get)(
        "/v1/responses/resp_x", headers={"Authorization": f"Bearer {alice_key}"}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"


@pytest.mark.django_db(transaction=True)
def test_a_streamed_cache_hit_replays_as_responses_events(_offline, org_a, alice_key):
    body = {"model": "gpt-4o", "input": "cache me please", "store": False}

    async def twice():
        client = AsyncClient()
        headers = {"Authorization": f"Bearer {alice_key}"}
        first = await client.post(
            "/v1/responses",
            data=json.dumps(body),
            content_type="application/json",
            headers=headers,
        )
        await asyncio.gather(*list(gateway._background))
        second = await client.post(
            "/v1/responses",
            data=json.dumps({**body, "stream": True}),
            content_type="application/json",
            headers=headers,
        )
        content = b"".join([part async for part in second.streaming_content])
        await asyncio.gather(*list(gateway._background))
        return first, second, content

    first, second, content = async_to_sync(twice)()
    assert second["x-synthlang-cache"] == "hit"
    events = _sse_events(content)
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == first.json()["output"][0]["content"][0]["text"]


@pytest.mark.django_db(transaction=True)
def test_a_client_leaving_mid_stream_is_accounted_as_disconnected(_offline, org_a, alice_key):
    # 40 ms between chunks: the server is waiting on the upstream when the client leaves,
    # and Django's ASGI handler cancels the response task, as it does on a disconnect.
    words = " ".join(f"word{i}" for i in range(80))
    body = {"model": "fake-slow-400", "input": words, "stream": True, "store": False}

    async def leave_early():
        response = await AsyncClient().post(
            "/v1/responses",
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {alice_key}", "x-synthlang-cache": "off"},
        )
        received: list[bytes] = []
        four = asyncio.Event()

        async def read():
            async for part in response.streaming_content:
                received.append(part)
                if len(received) == 4:
                    four.set()

        reader = asyncio.ensure_future(read())
        await asyncio.wait_for(four.wait(), timeout=30)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await asyncio.gather(*list(gateway._background))
        return response, received

    response, received = async_to_sync(leave_early)()
    usage.usage_flush_run()
    assert b"response.created" in received[0]
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert (event.endpoint, event.client_disconnected) == ("responses", True)
    assert event.prompt_tokens > 0


# --- Queries on the hot path -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", [False, True])
def test_a_warm_responses_request_runs_no_sql_but_the_stored_row(
    store,
    alice_key,
    sql_counter,  # noqa: F811
):
    body = json.dumps({"model": "gpt-4o", "input": "hello", "store": store})
    headers = {"Authorization": f"Bearer {alice_key}", "x-synthlang-cache": "off"}

    async def two_requests():
        client = AsyncClient()
        for _ in range(2):
            await asyncio.gather(*list(gateway._background))
            sql_counter.clear()
            response = await client.post(
                "/v1/responses", data=body, content_type="application/json", headers=headers
            )
            await asyncio.gather(*list(gateway._background))
        return response, list(sql_counter)

    response, statements = async_to_sync(two_requests)()
    assert response.status_code == 200
    writes = [sql for sql in statements if sql.lstrip().upper().startswith("INSERT")]
    assert len(writes) == (1 if store else 0)
    assert all("proxy_storedresponse" in sql for sql in writes)
    assert len(statements) == len(writes)  # no reads, no transaction statements


@pytest.mark.django_db(transaction=True)
def test_an_answer_that_cannot_be_stored_is_still_delivered(
    _offline, monkeypatch, org_a, alice_key
):
    def database_down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(responses_store, "stored_response_create", database_down)
    response, _ = _post(alice_key, {"input": "keep me", "store": True})
    assert response.status_code == 200
    assert "keep me" in response.json()["output"][0]["content"][0]["text"]
    assert UsageEvent.objects.filter(request_id=response["x-request-id"]).exists()


def test_a_streamed_refusal_becomes_a_refusal_part_with_its_own_events():
    events = ResponseEvents(_request({"input": "x"}), response_id="resp_3", created_at=1)
    emitted = events.start()
    emitted += events.add(_chunk({"role": "assistant", "refusal": "I can't "}))
    emitted += events.add(_chunk({"refusal": "help with that."}, finish="stop"))
    closing, final = events.finish()
    emitted += [*closing, final]
    types = [e["type"] for e in emitted]
    assert types[2:] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert emitted[3]["part"] == {"type": "refusal", "refusal": ""}
    assert final["response"]["output"][0]["content"] == [
        {"type": "refusal", "refusal": "I can't help with that."}
    ]


def test_text_after_a_tool_call_is_a_new_message_with_only_its_own_text():
    events = ResponseEvents(_request({"input": "x"}), response_id="resp_4", created_at=1)
    events.start()
    events.add(_chunk({"content": "first"}))
    events.add(_chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]}))
    events.add(_chunk({"content": "second"}))
    _, final = events.finish()
    texts = [
        item["content"][0]["text"]
        for item in final["response"]["output"]
        if item["type"] == "message"
    ]
    assert texts == ["first", "second"]
