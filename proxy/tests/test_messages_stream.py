"""Chat chunks as Anthropic's stream events, and errors in Anthropic's shape; checked
against the official ``anthropic`` SDK's own types and its stream accumulator."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from common.errors import DomainError, InvalidRequest, ServiceUnavailable
from proxy.adapters.anthropic_errors import anthropic_error_body, anthropic_status
from proxy.adapters.anthropic_stream import MessageStreamTranslator, encode_event
from proxy.adapters.chat_bridge import ChatRun
from proxy.messages_views import _translated_events
from proxy.providers.base import UpstreamError, classify_status

EVENT = TypeAdapter(RawMessageStreamEvent)


def chunk(delta: dict | None = None, finish=None, usage=None) -> dict:
    out = {"object": "chat.completion.chunk", "choices": []}
    if delta is not None or finish:
        out["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage:
        out["usage"] = usage
    return out


def replay(chunks: list[dict]) -> list[tuple[str, dict]]:
    translator = MessageStreamTranslator(model="claude-x", message_id="msg_abc", input_tokens=7)
    events = translator.start()
    for item in chunks:
        events += translator.feed(item)
    return events + translator.finish()


def test_a_text_then_tools_stream_becomes_ordered_blocks_the_sdk_accumulates():
    events = replay(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        }
                    ]
                }
            ),
            chunk({}, finish="tool_calls"),
            chunk(usage={"prompt_tokens": 30, "completion_tokens": 12}),
        ]
    )
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    snapshot = None
    json_bufs: dict = {}
    for name, data in events:
        if name == "ping":
            continue
        snapshot = accumulate_event(
            event=EVENT.validate_python(data), current_snapshot=snapshot, json_bufs=json_bufs
        )
    assert snapshot.content[0].text == "Hello"
    assert (snapshot.content[1].name, snapshot.content[1].input) == (
        "get_weather",
        {"city": "Oslo"},
    )
    assert (snapshot.content[2].id, snapshot.content[2].input) == ("call_b", {})
    assert snapshot.stop_reason == "tool_use"
    assert (snapshot.usage.input_tokens, snapshot.usage.output_tokens) == (30, 12)


def test_a_stream_without_content_still_opens_and_closes_the_message():
    events = replay([chunk({"role": "assistant", "content": ""}), chunk({}, finish="length")])
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]
    delta = events[2][1]
    assert delta["delta"]["stop_reason"] == "max_tokens"
    assert delta["usage"]["input_tokens"] == 7  # the estimate, since no usage arrived


def test_events_are_framed_with_their_event_line():
    raw = encode_event("message_stop", {"type": "message_stop"})
    assert raw == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequest("bad"), 400, "invalid_request_error"),
        (ServiceUnavailable(), 503, "overloaded_error"),
        (DomainError(), 500, "api_error"),
        (classify_status(529, None, None), 529, "overloaded_error"),
        (classify_status(500, None, None), 502, "api_error"),
        (classify_status(429, None, 3.0), 429, "rate_limit_error"),
        (UpstreamError("slow", code="upstream_timeout"), 504, "timeout_error"),
    ],
)
def test_errors_take_anthropics_shape_and_status(error, status, kind):
    body = anthropic_error_body(error, request_id="req_1")
    parsed = ErrorResponse.model_validate(body)
    assert parsed.error.type == kind
    assert anthropic_status(error) == status


def test_an_upstream_failure_mid_stream_becomes_an_error_event_and_the_stream_is_closed():
    closed = []

    async def chunks():
        try:
            yield chunk({"role": "assistant", "content": "Hal"})
            raise classify_status(529, None, None)
        finally:
            closed.append(True)

    run = ChatRun(
        call=SimpleNamespace(prompt_tokens_estimate=4), body=None, chunks=chunks(), headers={}
    )

    async def collect():
        return [part async for part in _translated_events(run, model="m")]

    frames = asyncio.run(collect())
    assert frames[-1].startswith(b"event: error\n")
    error = json.loads(frames[-1].split(b"data: ", 1)[1])
    assert error["error"]["type"] == "overloaded_error"
    assert b"event: content_block_delta" in b"".join(frames)
    assert closed == [True]
