"""The chat pipeline as the wire-format adapters use it: answers, streams, failures, usage."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncRequestFactory

from billing import usage
from billing.models import UsageEvent
from common.errors import DomainError
from proxy import gateway
from proxy.adapters.chat_bridge import chat_run
from proxy.providers.base import UpstreamError
from proxy.views import authenticate


@pytest.fixture(autouse=True)
def _offline(settings):
    settings.OPENAI_API_KEY = ""  # the offline fake provider answers
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    usage.memory_buffer.clear()
    yield
    usage.memory_buffer.clear()


def _request(key: str, request_id: str, **headers):
    request = AsyncRequestFactory().post(
        "/v1/responses",
        data="{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", "x-synthlang-cache": "off", **headers},
    )
    request.request_id = request_id
    return request


def _run(key: str, request_id: str, chat_body: dict, consume):
    async def scenario():
        request = _request(key, request_id)
        principal = await authenticate(request)
        try:
            run = await chat_run(request, principal, chat_body, endpoint="responses")
            return await consume(run)
        finally:
            await asyncio.gather(*list(gateway._background))

    try:
        return async_to_sync(scenario)()
    finally:
        usage.usage_flush_run()


def _chat(content: str, **extra) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}


@pytest.mark.django_db(transaction=True)
def test_a_json_call_answers_a_chat_completion_and_is_accounted_under_the_adapter_label(
    org_a, bob_key
):
    async def consume(run):
        return run.body, run.chunks, run.headers

    body, chunks, headers = _run(bob_key, "req-bridge-json", _chat("hello there"), consume)

    assert chunks is None
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"]
    assert headers["x-synthlang-cache"] == "off"
    assert "x-ratelimit-limit-requests" in headers
    event = UsageEvent.objects.get(request_id="req-bridge-json")
    assert event.endpoint == "responses"
    assert event.organization_id == org_a.pk
    assert (event.prompt_tokens, event.completion_tokens) == (
        body["usage"]["prompt_tokens"],
        body["usage"]["completion_tokens"],
    )


@pytest.mark.django_db(transaction=True)
def test_a_stream_yields_chunk_dicts_with_the_usage_chunk_last_even_unasked(org_a, bob_key):
    async def consume(run):
        assert run.body is None
        return [chunk async for chunk in run.chunks]

    chunks = _run(bob_key, "req-bridge-stream", _chat("tell me more", stream=True), consume)

    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    text = "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )
    assert text
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    event = UsageEvent.objects.get(request_id="req-bridge-stream")
    assert (event.endpoint, event.stream, event.client_disconnected) == ("responses", True, False)
    assert event.completion_tokens == chunks[-1]["usage"]["completion_tokens"]


@pytest.mark.django_db(transaction=True)
def test_a_stream_closed_early_is_accounted_as_abandoned(org_a, bob_key):
    long_prompt = " ".join(f"word{i}" for i in range(60))

    async def consume(run):
        first = await anext(run.chunks)
        await run.chunks.aclose()
        return first

    first = _run(bob_key, "req-bridge-left", _chat(long_prompt, stream=True), consume)

    assert first["object"] == "chat.completion.chunk"
    event = UsageEvent.objects.get(request_id="req-bridge-left")
    assert (event.endpoint, event.client_disconnected) == ("responses", True)
    assert event.prompt_tokens > 0


@pytest.mark.django_db(transaction=True)
def test_an_invalid_chat_body_raises_a_domain_error_for_the_adapter_to_render(org_a, bob_key):
    async def consume(run):  # pragma: no cover - never reached
        return run

    with pytest.raises(DomainError) as raised:
        _run(bob_key, "req-bridge-bad", {"model": "gpt-4o", "messages": "nope"}, consume)
    assert raised.value.status == 400
    assert raised.value.param and raised.value.param.startswith("messages")


@pytest.mark.django_db(transaction=True)
def test_an_upstream_failure_is_raised_with_the_call_headers_and_accounted(org_a, bob_key):
    async def consume(run):  # pragma: no cover - never reached
        return run

    with pytest.raises(UpstreamError) as raised:
        _run(bob_key, "req-bridge-fail", {**_chat("hi"), "model": "fake-fail-500"}, consume)
    assert raised.value.status == 502
    assert "x-ratelimit-limit-requests" in raised.value.headers
    event = UsageEvent.objects.get(request_id="req-bridge-fail")
    assert (event.endpoint, event.status_code) == ("responses", 502)
    assert event.error_code == raised.value.code


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("read", [0, 1, 1000], ids=["closed-unread", "one-chunk", "all"])
def test_a_replayed_stream_is_accounted_once_however_little_of_it_is_read(org_a, bob_key, read):
    body = _chat(f"what is the tallest mountain, {read}")

    async def scenario():
        principal = await authenticate(_request(bob_key, f"req-fill-{read}"))
        request = _request(bob_key, f"req-fill-{read}", **{"x-synthlang-cache": ""})
        await chat_run(request, principal, body, endpoint="responses")
        await asyncio.gather(*list(gateway._background))  # the answer is stored
        request = _request(bob_key, f"req-replay-{read}", **{"x-synthlang-cache": ""})
        run = await chat_run(request, principal, {**body, "stream": True}, endpoint="responses")
        assert run.headers["x-synthlang-cache"] == "hit"
        for _ in range(read):
            if await anext(run.chunks, None) is None:
                break
        await run.chunks.aclose()
        await run.chunks.aclose()  # closing twice accounts once
        await asyncio.gather(*list(gateway._background))

    async_to_sync(scenario)()
    usage.usage_flush_run()

    event = UsageEvent.objects.get(request_id=f"req-replay-{read}")
    assert event.cache == "hit" and event.endpoint == "responses"
    assert event.completion_tokens > 0
