"""A stage that must read every request of an organization (a PII mask it turned on)
makes that organization's Responses requests translated instead of passed through, and
the pass-through's own rules, tested on its parts."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from proxy import gateway
from proxy.adapters import responses_native
from proxy.adapters.responses_items import (
    estimate_chat_body,
    items_from_chat,
    items_page,
    stored_input_items,
)
from proxy.pipeline.registry import stages_require_translation
from proxy.pipeline.stage import Stage
from proxy.providers import http
from proxy.tests.test_responses_native_e2e import make_route

pytestmark = pytest.mark.django_db(transaction=True)


class MaskingStage(Stage):
    """Needs to read the requests of the organizations listed in ``organizations``."""

    name = "pii"
    organizations: set[int] = set()

    async def requires_translation(self, call) -> bool:
        return call.principal.organization_id in self.organizations


class BlindStage(Stage):
    name = "blind"  # does not override ``requires_translation``: asks for nothing


class AnsweringStage(Stage):
    """Answers every request itself, as a cache or a refusal would."""

    name = "answers"

    async def on_request(self, call):
        return {
            "id": "chatcmpl-stage",
            "object": "chat.completion",
            "model": call.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Answered by a stage."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }


STAGES = [f"{__name__}.BlindStage", f"{__name__}.MaskingStage"]


def _post_both(*posts: tuple[str, dict]) -> list:
    """The requests in-process on one event loop, its upstream connections closed after."""

    async def run():
        client = AsyncClient()
        responses = []
        for key, body in posts:
            responses.append(
                await client.post(
                    "/v1/responses",
                    data=json.dumps(body),
                    content_type="application/json",
                    headers={"Authorization": f"Bearer {key}", "x-synthlang-cache": "off"},
                )
            )
        await asyncio.gather(*list(gateway._background))
        for session in list(http._sessions.values()):
            await session.close()
        return responses

    return asyncio.run(run())


def test_an_organization_with_a_reading_stage_on_is_translated_the_others_pass_through(
    settings, fake_upstream, org_a, org_b, alice_key, charlie_key
):
    settings.SYNTHLANG_STAGES = STAGES
    MaskingStage.organizations = {org_a.pk}
    fake_upstream.reset()
    for organization in (org_a, org_b):
        make_route(organization, "gpt-native", ("openai", "gpt-4o", fake_upstream.v1, None))

    masked, passed = _post_both(
        (alice_key, {"model": "gpt-native", "input": "My card is 4111"}),
        (charlie_key, {"model": "gpt-native", "input": "Hello"}),
    )
    assert masked.status_code == passed.status_code == 200, (masked.content, passed.content)
    requests = fake_upstream.stats()["requests"]
    assert requests.get("/v1/chat/completions gpt-4o") == 1  # org A's, translated
    assert requests.get("/v1/responses gpt-4o") == 1  # org B's, passed through
    assert masked.json()["object"] == passed.json()["object"] == "response"


def test_with_stages_that_ask_nothing_nothing_is_translated(settings):
    settings.SYNTHLANG_STAGES = [f"{__name__}.BlindStage"]
    call = gateway.ProxyCall(
        principal=None, request_id="r", endpoint="chat.completions", model="gpt-4o", body={}
    )
    assert async_to_sync(stages_require_translation)(call) is False


def test_a_stage_answer_to_the_estimate_is_not_served_on_the_pass_through(
    settings, fake_upstream, org_a, alice_key
):
    # The stage saw a chat estimate, not what goes upstream: the upstream answers, as on
    # the Messages pass-through.
    settings.SYNTHLANG_STAGES = [f"{__name__}.AnsweringStage"]
    fake_upstream.reset()
    make_route(org_a, "gpt-native", ("openai", "gpt-4o", fake_upstream.v1, None))
    (answered,) = _post_both((alice_key, {"model": "gpt-native", "input": "Hello", "store": False}))
    assert answered.status_code == 200, answered.content
    response = answered.json()
    assert "Hello" in response["output"][0]["content"][0]["text"]
    assert response["id"].startswith("resp_") and response["store"] is False
    assert fake_upstream.stats()["requests"]["/v1/responses gpt-4o"] == 1


def test_the_upstream_body_carries_history_as_items_and_never_stores():
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ]
    body = {"model": "gpt-4o", "input": "Thanks", "previous_response_id": "resp_1", "store": True}
    native = responses_native.NativeRequest(body, history, default_model="gpt-4o")
    assert native.upstream_body == {
        "model": "gpt-4o",
        "store": False,
        "input": [
            {"type": "message", "role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
            {"type": "message", "role": "assistant", "content": "It is sunny."},
            {"type": "message", "role": "user", "content": "Thanks"},
        ],
    }
    patched = native.patch({"id": "resp_upstream", "store": False, "output": []})
    assert patched["id"] == native.response_id != "resp_upstream"
    assert (patched["store"], patched["previous_response_id"]) == (True, "resp_1")
    assert items_from_chat(history)[1]["type"] == "function_call"


def test_a_request_only_a_responses_upstream_understands_cannot_fall_back_to_chat():
    body = {"model": "gpt-4o", "input": "Search", "tools": [{"type": "web_search"}]}
    native = responses_native.NativeRequest(body, [], default_model="gpt-4o")
    assert native.translated is None
    with pytest.raises(responses_native.UpstreamError) as raised:
        native.chat_body(stream=False)
    assert raised.value.retryable is False and "function tools" in raised.value.message
    # Admission still counts its text.
    estimate = estimate_chat_body(body, [])
    assert estimate["messages"][0] == {"role": "user", "content": "Search"}
    assert "web_search" in estimate["messages"][-1]["content"]


def test_input_items_get_ids_and_pages_follow_after():
    items = stored_input_items(
        [
            {"role": "user", "content": "one"},
            {"type": "function_call_output", "call_id": "c", "output": "two"},
            {"type": "message", "role": "assistant", "content": "three", "id": "msg_kept"},
        ]
    )
    assert [item["id"][:4] for item in items] == [items[0]["id"][:4], "fco_", "msg_"]
    assert items[2]["id"] == "msg_kept"
    assert items[0]["content"] == [{"type": "input_text", "text": "one"}]
    page = items_page(items, limit=2, order="desc", after=None)
    assert [item["id"] for item in page["data"]] == [items[2]["id"], items[1]["id"]]
    assert page["has_more"] is True
    rest = items_page(items, limit=2, order="desc", after=page["last_id"])
    assert [item["id"] for item in rest["data"]] == [items[0]["id"]]
    assert rest["has_more"] is False
    with pytest.raises(responses_native.InvalidRequest):
        items_page(items, limit=2, order="sideways", after=None)
    with pytest.raises(responses_native.InvalidRequest):
        items_page(items, limit=2, order="asc", after="msg_unknown")


def test_a_stream_that_fails_midway_ends_with_response_failed_and_counts_what_came(
    monkeypatch,
):
    native = responses_native.NativeRequest(
        {"model": "gpt-4o", "input": "hi"}, [], default_model="gpt-4o"
    )
    accounted = {}

    async def account(call, events, usage):
        accounted.update(usage)

    monkeypatch.setattr(responses_native, "_close_and_account", account)
    call = gateway.ProxyCall(
        principal=None, request_id="req_1", endpoint="chat.completions", model="gpt-4o", body={}
    )
    call.prompt_tokens_estimate = 7

    async def upstream():
        yield {"type": "response.output_text.delta", "sequence_number": 3, "delta": "Hello there"}
        raise responses_native.UpstreamError("The upstream went away.", upstream_status=500)

    async def run():
        first = {
            "type": "response.created",
            "sequence_number": 0,
            "response": {"id": "resp_up", "object": "response", "status": "in_progress"},
        }
        events = upstream()
        frames = [
            frame
            async for frame in responses_native._relay(
                call, native, first, events, store=lambda response: None
            )
        ]
        await asyncio.gather(*list(gateway._background))
        return frames

    frames = asyncio.run(run())
    events = [json.loads(frame.split(b"\ndata: ", 1)[1]) for frame in frames]
    assert events[0]["response"]["id"] == native.response_id
    last = events[-1]
    assert last["type"] == "response.failed" and last["sequence_number"] == 4
    assert last["response"]["id"] == native.response_id
    assert last["response"]["error"]["message"] == "The upstream went away."
    assert call.status_code == 502 and call.usage_estimated is True
    assert accounted["prompt_tokens"] == 7 and accounted["completion_tokens"] > 0


def test_with_pii_masking_on_a_responses_request_is_translated_and_masked(
    settings, fake_upstream, org_a, alice_key
):
    """The real guardrails stage, not a test double: a passed-through request would reach
    the provider unmasked, so an organization with masking on is translated."""
    from guardrails.services import organization_guardrails_update

    organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    fake_upstream.reset()
    make_route(org_a, "gpt-native", ("openai", "gpt-4o", fake_upstream.v1, None))

    (response,) = _post_both(
        (alice_key, {"model": "gpt-native", "input": "Write to ada@example.com today."}),
    )

    assert response.status_code == 200, response.content
    stats = fake_upstream.stats()
    assert stats["requests"].get("/v1/responses gpt-4o", 0) == 0
    sent = json.dumps(stats["last_bodies"]["gpt-4o"])
    assert "ada@example.com" not in sent
    assert "[EMAIL_1]" in sent
