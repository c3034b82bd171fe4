"""A chat completions stream as Anthropic's Messages stream events.

Anthropic's stream is a sequence of content blocks, each opened, filled with deltas and
closed, framed by ``message_start`` and ``message_delta`` / ``message_stop``; a chat
stream interleaves text and tool-call deltas in one choice. ``MessageStreamTranslator``
turns one into the other chunk by chunk, without buffering.
"""

from __future__ import annotations

import json

from proxy.adapters.anthropic_messages import messages_usage, stop_reason, thinking_block
from proxy.adapters.responses_answer import reasoning_of

Event = tuple[str, dict]


def encode_event(name: str, data: dict) -> bytes:
    """One server-sent event with its ``event:`` line, as Anthropic frames them."""
    try:
        payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        # A lone surrogate has no UTF-8 form; ASCII escapes carry it through unchanged.
        payload = json.dumps(data, separators=(",", ":")).encode()
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


def error_event(error_type: str, message: str) -> Event:
    return "error", {"type": "error", "error": {"type": error_type, "message": message}}


class MessageStreamTranslator:
    """Chat chunks in, Messages stream events out (``(event name, data)`` pairs)."""

    def __init__(
        self, *, model: str, message_id: str, input_tokens: int = 0, thinking: bool = False
    ):
        self.model = model
        self.thinking = thinking  # the request asked for thinking: reasoning becomes blocks
        self.message_id = message_id
        self.input_tokens = input_tokens
        self.blocks = 0  # content blocks opened so far; the next one's index
        self.open_block: int | None = None
        self.open_kind = ""
        self.tool_blocks: dict[int, int] = {}  # chat tool call index -> block index
        self.finish_reason: str | None = None
        self.usage: dict | None = None

    def start(self) -> list[Event]:
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The prompt as counted before the call; message_delta carries the upstream's
            # count, which the SDK takes over.
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    def feed(self, chunk: dict) -> list[Event]:
        events: list[Event] = []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # a Message has one answer; n > 1 is not part of this API
            delta = choice.get("delta") or {}
            reasoning = reasoning_of(delta) if self.thinking else ""
            if reasoning:
                if self.open_kind != "thinking":
                    events += self._open(thinking_block(""), "thinking")
                events.append(
                    self._delta(self.open_block, {"type": "thinking_delta", "thinking": reasoning})
                )
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.open_kind != "text":
                    events += self._open({"type": "text", "text": ""}, "text")
                events.append(self._delta(self.open_block, {"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                events += self._tool_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def finish(self) -> list[Event]:
        events = self._close()
        usage = messages_usage(self.usage)
        if self.usage is None:
            usage["input_tokens"] = self.input_tokens
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": stop_reason(self.finish_reason),
                        "stop_sequence": None,
                    },
                    "usage": usage,
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    # --- Blocks ---------------------------------------------------------------------------

    def _tool_call(self, call: dict) -> list[Event]:
        events: list[Event] = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self.tool_blocks:
            block = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{self.message_id[4:]}_{index}",
                "name": function.get("name") or "",
                "input": {},
            }
            events += self._open(block, "tool_use")
            self.tool_blocks[index] = self.open_block
        arguments = function.get("arguments")
        if arguments:
            # Chat streams one call after another; a late piece of an earlier call still
            # names its own block, which the SDK accumulates by index.
            events.append(
                self._delta(
                    self.tool_blocks[index], {"type": "input_json_delta", "partial_json": arguments}
                )
            )
        return events

    def _open(self, block: dict, kind: str) -> list[Event]:
        events = self._close()
        self.open_block, self.open_kind = self.blocks, kind
        self.blocks += 1
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self.open_block, "content_block": block},
            )
        )
        return events

    def _close(self) -> list[Event]:
        if self.open_block is None:
            return []
        index, self.open_block, self.open_kind = self.open_block, None, ""
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    @staticmethod
    def _delta(index: int | None, delta: dict) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )
