"""Server-sent event streams: putting a streamed answer back together, and replaying a
whole answer (a cache hit) as a stream."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

_PIECES = re.compile(r"\s*\S+|\s+$")


class StreamAssembler:
    """Collects the chunks of a chat or completions stream as they pass through."""

    def __init__(self) -> None:
        self.base: dict = {}
        self.choices: dict[int, dict] = {}
        self.usage: dict | None = None

    def add(self, chunk: dict) -> None:
        if not self.base:
            self.base = {
                k: chunk.get(k)
                for k in ("id", "created", "model", "system_fingerprint")
                if k in chunk
            }
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            state = self.choices.setdefault(
                choice.get("index", 0),
                {
                    "role": "assistant",
                    "content": [],
                    "reasoning": [],
                    "tool_calls": {},
                    "finish_reason": None,
                },
            )
            delta = choice.get("delta")
            if delta is None:  # legacy completions stream
                if isinstance(choice.get("text"), str):
                    state["content"].append(choice["text"])
            else:
                if isinstance(delta.get("content"), str):
                    state["content"].append(delta["content"])
                # An OpenAI-compatible reasoning model's thinking, under either name in use
                # (the first only: a server may send both, with the same text).
                for name in ("reasoning_content", "reasoning"):
                    if isinstance(delta.get(name), str) and delta[name]:
                        state["reasoning"].append(delta[name])
                        break
                for call in delta.get("tool_calls") or ():
                    merged = state["tool_calls"].setdefault(
                        call.get("index", 0),
                        {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                    )
                    if call.get("id"):
                        merged["id"] = call["id"]
                    function = call.get("function") or {}
                    merged["function"]["name"] += function.get("name") or ""
                    merged["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]

    def text(self) -> str:
        return "".join("".join(state["content"]) for state in self.choices.values())

    def chat_completion(self) -> dict | None:
        """The answer as a ``chat.completion`` body, or None if it did not finish."""
        if not self.choices or any(s["finish_reason"] is None for s in self.choices.values()):
            return None
        choices = []
        for index in sorted(self.choices):
            state = self.choices[index]
            message: dict = {
                "role": "assistant",
                "content": "".join(state["content"]) or None,
                "refusal": None,
            }
            if state["reasoning"]:
                message["reasoning_content"] = "".join(state["reasoning"])
            if state["tool_calls"]:
                message["tool_calls"] = [
                    state["tool_calls"][i] for i in sorted(state["tool_calls"])
                ]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": state["finish_reason"],
                }
            )
        return {"object": "chat.completion", **self.base, "choices": choices, "usage": self.usage}


def replay_chat_completion(body: dict, *, include_usage: bool) -> Iterator[dict]:
    """A complete chat answer as the chunks a streaming client expects."""
    base = {
        "id": body.get("id"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
    }
    usage_field = {"usage": None} if include_usage else {}
    for choice in body.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}

        def chunk(delta: dict, finish_reason=None, index=index) -> dict:
            return {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                **usage_field,
            }

        yield chunk({"role": "assistant", "content": ""})
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            yield chunk({"reasoning_content": reasoning})
        for piece in _PIECES.findall(message.get("content") or ""):
            yield chunk({"content": piece})
        if message.get("tool_calls"):
            yield chunk(
                {
                    "tool_calls": [
                        {"index": i, **call} for i, call in enumerate(message["tool_calls"])
                    ]
                }
            )
        yield chunk({}, choice.get("finish_reason") or "stop")
    if include_usage:
        yield {**base, "choices": [], "usage": body.get("usage")}
