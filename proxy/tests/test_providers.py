"""Provider translations: Anthropic's Messages API and Azure OpenAI's URL scheme."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from proxy.providers import anthropic, http
from proxy.providers.base import Target, UpstreamError, classify_status
from proxy.providers.openai import AzureOpenAIProvider, OpenAICompatibleProvider


def test_chat_request_becomes_a_messages_request():
    body = {
        "model": "claude-sonnet",
        "max_tokens": 300,
        "temperature": 0.2,
        "stop": "END",
        "user": "u-1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "4°C, rain"},
            {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Forecast",
                    "parameters": {"type": "object"},
                },
            }
        ],
        "tool_choice": "required",
    }
    request = anthropic.to_messages_request(body, "claude-3-5-sonnet-latest")
    assert request["model"] == "claude-3-5-sonnet-latest"
    assert request["system"] == "Be brief."
    assert request["max_tokens"] == 300
    assert request["stop_sequences"] == ["END"]
    assert request["metadata"] == {"user_id": "u-1"}
    assert request["tool_choice"] == {"type": "any"}
    assert request["tools"][0]["input_schema"] == {"type": "object"}
    roles = [message["role"] for message in request["messages"]]
    # The tool result and the next user turn merge into one user message: the Messages
    # API wants the roles to alternate.
    assert roles == ["user", "assistant", "user"]
    assert request["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "weather",
        "input": {"city": "Oslo"},
    }
    assert request["messages"][2]["content"][0]["type"] == "tool_result"
    assert request["messages"][2]["content"][1] == {"type": "text", "text": "And tomorrow?"}


def test_messages_response_becomes_a_chat_completion():
    payload = {
        "id": "msg_1",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4},
    }
    completion = anthropic.from_messages_response(payload, "claude-x")
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Oslo"
    }
    assert completion["usage"] == {
        "prompt_tokens": 14,
        "completion_tokens": 5,
        "total_tokens": 19,
        "prompt_tokens_details": {"cached_tokens": 4},
        "cache_read_input_tokens": 4,
        "cache_creation_input_tokens": 0,
    }


def test_anthropic_stream_becomes_chat_chunks(monkeypatch):
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 12, "output_tokens": 1}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hel"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "lo"},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 2},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]

    async def fake_sse(url, *, headers, body):
        assert body["stream"] is True and headers["anthropic-version"]
        for event in events:
            yield event

    monkeypatch.setattr(http, "post_sse", fake_sse)
    target = Target(provider="anthropic", upstream_model="claude-x", api_key="k")

    async def collect():
        return [
            chunk
            async for chunk in anthropic.AnthropicProvider().chat_stream(
                target, {"messages": [{"role": "user", "content": "hi"}]}
            )
        ]

    chunks = asyncio.run(collect())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 12
    assert chunks[-1]["usage"]["completion_tokens"] == 2


def test_azure_puts_the_deployment_in_the_path_and_the_key_in_api_key():
    provider = AzureOpenAIProvider()
    target = Target(
        provider="azure",
        upstream_model="prod-gpt4o",
        api_key="azure-secret",
        base_url="https://acme.openai.azure.com",
        options={"api_version": "2024-10-21"},
    )
    assert provider._url(target, "/chat/completions") == (
        "https://acme.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions"
        "?api-version=2024-10-21"
    )
    assert provider._headers(target) == {"api-key": "azure-secret"}
    assert "model" not in provider._body(target, {"model": "gpt-4o", "messages": []})


@pytest.mark.parametrize(
    "base_url",
    [
        "https://acme.openai.azure.com",
        "https://acme.openai.azure.com/",
        "https://acme.openai.azure.com/openai",
        "https://acme.openai.azure.com/openai/deployments/prod-gpt4o",
    ],
)
def test_azure_responses_go_to_the_v1_surface_with_the_deployment_as_the_model(base_url):
    provider = AzureOpenAIProvider()
    target = Target(
        provider="azure",
        upstream_model="prod-gpt4o",
        api_key="azure-secret",
        base_url=base_url,
        options={"api_version": "2024-10-21"},
    )
    assert provider._responses_url(target) == "https://acme.openai.azure.com/openai/v1/responses"
    body = provider._responses_body(target, {"model": "gpt-4o", "input": "Hi"})
    assert body == {"model": "prod-gpt4o", "input": "Hi"}
    assert provider.speaks_responses({}) is True
    assert provider.speaks_responses({"responses_api": False}) is False


@pytest.mark.parametrize(
    ("status", "code", "client_status", "retryable"),
    [
        (401, "upstream_auth_failed", 502, False),
        (403, "upstream_auth_failed", 502, False),
        (429, "rate_limit_exceeded", 429, True),
        (500, "upstream_error", 502, True),
        (503, "upstream_error", 502, True),
        (404, "model_not_found", 404, False),
        (400, "invalid_request_error", 400, False),
    ],
)
def test_upstream_statuses_map_to_what_the_client_should_see(
    status, code, client_status, retryable
):
    error = classify_status(status, {"error": {"message": "upstream says no"}}, 1.5)
    assert isinstance(error, UpstreamError)
    assert (error.code, error.status, error.retryable) == (code, client_status, retryable)
    # An upstream's 429 or 5xx passed on keeps its pause, rounded up to whole seconds.
    assert error.headers.get("retry-after") == ("2" if retryable else None)


def _with_upstream(handler, scenario, host="127.0.0.1", method="POST", path="/v1/echo"):
    """Run ``scenario(url)`` against an aiohttp server answering ``method`` ``path``."""
    from aiohttp import web

    async def run():
        app = web.Application()
        app.router.add_route(method, path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://{host}:{site._server.sockets[0].getsockname()[1]}{path}"
        try:
            return await scenario(url)
        finally:
            await http.session_for(url).close()
            await runner.cleanup()

    return asyncio.run(run())


def test_upstream_cookies_are_never_sent_back():
    """The upstream session is shared by every organization: it must keep no cookies."""
    from aiohttp import web

    seen_cookies = []

    async def handler(request):
        seen_cookies.append(request.headers.get("Cookie"))
        response = web.json_response({"ok": True})
        response.set_cookie("upstream_session", "tenant-a-secret")
        return response

    async def scenario(url):
        for _ in range(2):
            await http.post_json(url, headers={}, body={"n": 1})

    # A host name, not an IP address: a default jar keeps cookies only for names.
    _with_upstream(handler, scenario, host="localhost")
    assert seen_cookies == [None, None]


def test_a_closed_loops_upstream_session_is_dropped_not_handed_to_the_next_loop():
    url = "http://upstream.invalid/v1/chat/completions"

    async def session_now():
        return http.session_for(url)

    first = asyncio.run(session_now())
    second = asyncio.run(session_now())  # a new loop, possibly with the first one's id
    assert second is not first
    assert first not in http._sessions.values()
    asyncio.run(second.close())


def test_request_bodies_reach_the_upstream_as_the_client_sent_them():
    from aiohttp import web

    received = []

    async def handler(request):
        received.append((request.content_type, json.loads(await request.read())))
        return web.json_response({"ok": True})

    bodies = [
        {"model": "m", "messages": [{"role": "user", "content": "Grüße, 東京 🚀"}], "n": 2},
        # Beyond 64 bits: the fast encoder refuses it, the standard library sends it exactly.
        {"model": "m", "seed": 2**70, "logit_bias": {"50256": -100}},
        # Half an emoji, which JSON may escape: the fast encoder refuses it, ASCII escapes
        # carry it.
        {"model": "m", "messages": [{"role": "user", "content": "hi \ud83d there"}]},
    ]

    async def scenario(url):
        for body in bodies:
            await http.post_json(url, headers={}, body=body)

    _with_upstream(handler, scenario)
    assert received == [("application/json", body) for body in bodies]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            b'{"usage": {"prompt_tokens": 3}, "text": "caf\xc3\xa9"}',
            {"usage": {"prompt_tokens": 3}, "text": "café"},
        ),
        # Not strict JSON, but what Python's own encoder writes: still read.
        (b'{"score": NaN}', "nan"),
        # Beyond 64 bits: the fast decoder would read a float and lose the last digits.
        (
            b'{"id": 123456789012345678901234567890, "n": -98765432109876543210}',
            {"id": 123456789012345678901234567890, "n": -98765432109876543210},
        ),
        (b'{"text": "cut \\ud83d"}', {"text": "cut \ud83d"}),
        # An embedding's floats have long fractions; they are no long integers.
        (
            b'{"embedding": [0.0037719067186117172, -0.12345678901234567891e-3]}',
            {"embedding": [0.0037719067186117172, -0.12345678901234567891e-3]},
        ),
        # Below -2**63 with nineteen digits: also beyond what the fast decoder reads exactly.
        (b'{"n": -9223372036854775809}', {"n": -9223372036854775809}),
    ],
)
def test_upstream_answers_are_read_like_the_standard_library_reads_them(answer, expected):
    from aiohttp import web

    async def handler(request):
        return web.Response(body=answer, content_type="application/json")

    async def scenario(url):
        return await http.post_json(url, headers={}, body={})

    payload, _headers, raw = _with_upstream(handler, scenario)
    assert raw == answer
    if expected == "nan":
        assert payload["score"] != payload["score"]
    else:
        assert payload == expected


def test_stream_events_are_read_exactly():
    from aiohttp import web

    events = [
        {"id": "c", "choices": [{"delta": {"content": "Grüße"}}]},
        {"id": "c", "seed": 2**70 + 1, "choices": []},
    ]

    async def handler(request):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    async def scenario(url):
        return [parsed async for _name, parsed in http.post_sse(url, headers={}, body={})]

    assert _with_upstream(handler, scenario) == events


@pytest.mark.parametrize("answer", [b"<html>please sign in</html>", b"[1, 2]", b'"models"', b""])
def test_a_model_list_that_is_not_a_json_object_is_an_upstream_error(answer):
    """A wrong base URL answers 200 with a login page: the model list must not be a 500."""
    from aiohttp import web

    async def handler(request):
        return web.Response(body=answer)

    async def scenario(url):
        with pytest.raises(UpstreamError) as raised:
            await http.get_json(url, headers={})
        return raised.value

    assert _with_upstream(handler, scenario, method="GET").retryable


def test_retry_after_is_read_in_seconds_milliseconds_or_as_a_date():
    from email.utils import format_datetime

    in_two_minutes = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    an_hour_ago = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert http._retry_after({"retry-after": "7"}) == 7.0
    assert http._retry_after({"retry-after-ms": "250", "retry-after": "7"}) == 0.25
    assert 100 < http._retry_after({"retry-after": in_two_minutes}) <= 120
    assert http._retry_after({"retry-after": an_hour_ago}) == 0.0
    assert http._retry_after({"retry-after": "soon"}) is None
    assert http._retry_after({}) is None
    # Numbers that are no pause, and a date past any clock: no pause asked, and no crash.
    for nonsense in ("inf", "nan", "-5", "1e400", "Wed, 21 Oct 99999999999 07:28:00 GMT"):
        assert http._retry_after({"retry-after": nonsense}) is None, nonsense
    assert http._retry_after({"retry-after-ms": "Infinity", "retry-after": "3"}) == 3.0


def test_a_model_list_without_a_data_list_is_empty():
    from aiohttp import web

    async def handler(request):
        return web.json_response({"object": "list", "data": None})

    async def scenario(url):
        base_url = url.removesuffix("/models")
        target = Target(provider="openai", upstream_model="m", api_key="k", base_url=base_url)
        return await OpenAICompatibleProvider().list_models(target)

    assert _with_upstream(handler, scenario, method="GET", path="/v1/models") == []


def test_a_stream_event_that_is_not_utf8_json_is_an_upstream_error():
    from aiohttp import web

    async def handler(request):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"id": "c", "choices": []}\n\n')
        await response.write(b'data: {"text": "caf\xe9"}\n\n')  # Latin-1, not UTF-8
        return response

    async def scenario(url):
        received = []
        with pytest.raises(UpstreamError) as raised:
            async for _name, parsed in http.post_sse(url, headers={}, body={}):
                received.append(parsed)
        return received, raised.value

    received, error = _with_upstream(handler, scenario)
    assert received == [{"id": "c", "choices": []}]
    assert "malformed stream event" in error.message


def test_an_upstream_that_does_not_accept_the_connection_is_a_connect_timeout(settings):
    """A listener whose queue is full drops new connection attempts: the connect timeout,
    not the read timeout, ends the wait."""
    import socket

    settings.UPSTREAM_CONNECT_TIMEOUT = 0.3
    settings.UPSTREAM_READ_TIMEOUT = 600
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(4):  # never accepted: they fill the queue
        waiting = socket.socket()
        waiting.setblocking(False)
        waiting.connect_ex(("127.0.0.1", port))
        queued.append(waiting)

    async def scenario():
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        try:
            with pytest.raises(UpstreamError) as raised:
                await http.post_json(url, headers={}, body={})
            return raised.value
        finally:
            await http.session_for(url).close()

    try:
        error = asyncio.run(scenario())
    finally:
        for sock in [listener, *queued]:
            sock.close()
    assert (error.code, error.retryable) == ("upstream_timeout", True)


def test_an_upstream_answer_that_is_not_json_is_a_retryable_upstream_error():
    from aiohttp import web

    async def handler(request):
        return web.Response(body=b"<html>gateway timeout</html>", content_type="text/html")

    async def scenario(url):
        with pytest.raises(UpstreamError) as caught:
            await http.post_json(url, headers={}, body={})
        return caught.value

    assert _with_upstream(handler, scenario).retryable
