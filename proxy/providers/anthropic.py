"""Anthropic's Messages API behind OpenAI's chat completions format, streaming included."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncIterator

from billing.pricing import usage_tokens
from proxy.providers import http
from proxy.providers.base import Target, UpstreamError, UpstreamResult
from proxy.providers.prompt_cache import client_marked_cache, place_breakpoints

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
# The Messages API requires max_tokens; OpenAI's does not.
DEFAULT_MAX_TOKENS = 4096
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _content_blocks(content) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            block = {"type": "text", "text": part.get("text", "")}
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and ";base64," in url:
                media_type, data = url[5:].split(";base64,", 1)
                block = {
                    "type": "image",
                    "source": {"type": "base64", "media_type": media_type, "data": data},
                }
            else:
                block = {"type": "image", "source": {"type": "url", "url": url}}
        else:
            continue
        # A client that marks its own cache breakpoints (as on Anthropic's API, or
        # OpenRouter's and LiteLLM's OpenAI format) keeps them.
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _marked(blocks: list[dict], message: dict) -> list[dict]:
    # LiteLLM's form: cache_control on the message marks its last block.
    if "cache_control" in message and blocks:
        blocks[-1]["cache_control"] = message["cache_control"]
    return blocks


def _system(messages: list[dict]):
    """The system prompt: one string, or text blocks when the client marked any."""
    system = [m for m in messages if m.get("role") in ("system", "developer")]
    if not system:
        return None
    if not any(client_marked_cache({"messages": [message]}) for message in system):
        return "\n\n".join(_text_of(message.get("content")) for message in system)
    blocks = []
    for message in system:
        content = message.get("content")
        parts = _content_blocks(content) if content else []
        blocks.extend(_marked([b for b in parts if b["type"] == "text"], message))
    return blocks


def to_messages_request(body: dict, upstream_model: str, *, breakpoints: bool = False) -> dict:
    """OpenAI chat request -> Anthropic Messages request.

    With ``breakpoints``, the stable prefix is marked for Anthropic's prompt cache,
    unless the client marked breakpoints itself: then its own are the only ones.
    """
    messages: list[dict] = []

    def append(role: str, blocks: list[dict]) -> None:
        # The Messages API wants alternating roles: merge consecutive turns of one role.
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for message in body.get("messages") or []:
        role = message.get("role")
        if role == "user":
            append("user", _marked(_content_blocks(message.get("content")), message))
        elif role == "assistant":
            blocks = _content_blocks(message.get("content")) if message.get("content") else []
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": arguments,
                    }
                )
            append("assistant", _marked(blocks, message))
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": _text_of(message.get("content")),
            }
            append("user", _marked([result], message))
    request: dict = {
        "model": upstream_model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    system = _system(body.get("messages") or [])
    if system:
        request["system"] = system
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            request[name] = body[name]
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        request["tools"] = [_tool(tool) for tool in body["tools"] if tool.get("type") == "function"]
    choice = body.get("tool_choice")
    if choice == "required":
        request["tool_choice"] = {"type": "any"}
    elif choice == "auto":
        request["tool_choice"] = {"type": "auto"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        request["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
    if isinstance(body.get("user"), str):
        request["metadata"] = {"user_id": body["user"]}
    if "cache_control" in body:
        # Anthropic's automatic caching: one marker that follows the conversation.
        request["cache_control"] = body["cache_control"]
    elif breakpoints and not client_marked_cache(body):
        place_breakpoints(request, model=upstream_model)
    return request


def messages_marked_cache(request: dict) -> bool:
    """Whether a Messages request carries a ``cache_control`` marker anywhere."""
    system = request.get("system")
    if isinstance(system, list) and any(
        isinstance(block, dict) and "cache_control" in block for block in system
    ):
        return True
    return client_marked_cache(request)


def _tool(tool: dict) -> dict:
    function = tool["function"]
    definition = {
        "name": function["name"],
        "description": function.get("description", ""),
        "input_schema": function.get("parameters") or {"type": "object"},
    }
    marker = tool.get("cache_control") or function.get("cache_control")
    if marker:
        definition["cache_control"] = marker
    return definition


def _usage(usage: dict) -> dict:
    """Anthropic's usage in OpenAI's terms, as the client's SDK reads it.

    Anthropic's ``input_tokens`` leaves out what was read from or written to the cache;
    OpenAI's ``prompt_tokens`` counts every input token and ``cached_tokens`` the ones
    read. Anthropic's two cache counts stay beside them (as LiteLLM reports them), so
    accounting can bill writes, which cost more than fresh input, apart from reads.
    """
    tokens = usage_tokens(usage)
    return {
        "prompt_tokens": tokens.prompt_tokens,
        "completion_tokens": tokens.completion_tokens,
        "total_tokens": tokens.prompt_tokens + tokens.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": tokens.cache_read_tokens},
        "cache_read_input_tokens": tokens.cache_read_tokens,
        "cache_creation_input_tokens": tokens.cache_write_tokens,
    }


def from_messages_response(payload: dict, model: str) -> dict:
    """Anthropic Messages response -> OpenAI chat completion."""
    text_parts, tool_calls = [], []
    for block in payload.get("content") or []:
        if block.get("type") == "text":
            text_parts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
    message: dict = {"role": "assistant", "content": "".join(text_parts) or None, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-{payload.get('id', uuid.uuid4().hex)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(payload.get("stop_reason"), "stop"),
            }
        ],
        "usage": _usage(payload.get("usage") or {}),
    }


class AnthropicProvider:
    name = "anthropic"

    def _url(self, target: Target) -> str:
        return f"{(target.base_url or DEFAULT_BASE_URL).rstrip('/')}/messages"

    def _headers(self, target: Target, beta: str = "") -> dict[str, str]:
        headers = {"x-api-key": target.api_key, "anthropic-version": ANTHROPIC_VERSION}
        if beta:
            headers["anthropic-beta"] = beta
        return headers

    def _request(self, target: Target, body: dict) -> dict:
        return to_messages_request(
            body, target.upstream_model, breakpoints=target.prompt_cache.breakpoints
        )

    async def chat(self, target: Target, body: dict) -> UpstreamResult:
        payload, headers, _raw = await http.post_json(
            self._url(target),
            headers=self._headers(target),
            body=self._request(target, body),
        )
        return UpstreamResult(
            body=from_messages_response(payload, target.upstream_model), headers=headers
        )

    async def chat_stream(self, target: Target, body: dict) -> AsyncIterator[dict]:
        request = {**self._request(target, body), "stream": True}
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": target.upstream_model,
        }
        usage: dict = {}
        tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index

        def chunk(delta: dict, finish_reason=None) -> dict:
            return {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }

        async for event, data in http.post_sse(
            self._url(target), headers=self._headers(target), body=request
        ):
            kind = data.get("type") or event
            if kind == "message_start":
                usage.update((data.get("message") or {}).get("usage") or {})
                yield chunk({"role": "assistant", "content": ""})
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use":
                    tool_index[data.get("index", 0)] = len(tool_index)
                    yield chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": tool_index[data.get("index", 0)],
                                    "id": block.get("id"),
                                    "type": "function",
                                    "function": {"name": block.get("name"), "arguments": ""},
                                }
                            ]
                        }
                    )
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                if delta.get("type") == "text_delta":
                    yield chunk({"content": delta.get("text", "")})
                elif delta.get("type") == "input_json_delta":
                    yield chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": tool_index.get(data.get("index", 0), 0),
                                    "function": {"arguments": delta.get("partial_json", "")},
                                }
                            ]
                        }
                    )
            elif kind == "message_delta":
                usage.update(data.get("usage") or {})
                reason = (data.get("delta") or {}).get("stop_reason")
                if reason:
                    yield chunk({}, FINISH_REASONS.get(reason, "stop"))
            elif kind == "error":
                error = data.get("error") or {}
                raise UpstreamError(
                    f"Anthropic stream error: {error.get('message', '')}",
                    retryable=error.get("type") == "overloaded_error",
                )
        yield {**base, "choices": [], "usage": _usage(usage)}

    # --- Native Messages requests (the client speaks Anthropic's format already) ----------

    def native_request(self, target: Target, body: dict) -> dict:
        """A Messages request as the client sent it, for the route's upstream model: its
        own cache breakpoints kept, the organization's placed only where it marked none."""
        request = {**body, "model": target.upstream_model}
        if target.prompt_cache.breakpoints and not messages_marked_cache(request):
            request = copy.deepcopy(request)
            place_breakpoints(request, model=target.upstream_model)
        return request

    async def messages(self, target: Target, body: dict, *, beta: str = "") -> UpstreamResult:
        payload, headers, raw = await http.post_json(
            self._url(target),
            headers=self._headers(target, beta),
            body=self.native_request(target, body),
        )
        return UpstreamResult(body=payload, headers=headers, raw=raw)

    async def messages_stream(
        self, target: Target, body: dict, *, beta: str = ""
    ) -> AsyncIterator[tuple[str, dict]]:
        """Anthropic's stream events as they come, ``(event name, data)``."""
        request = {**self.native_request(target, body), "stream": True}
        async for event, data in http.post_sse(
            self._url(target), headers=self._headers(target, beta), body=request
        ):
            kind = data.get("type") or event
            if kind == "error":
                error = data.get("error") or {}
                overloaded = error.get("type") == "overloaded_error"
                raise UpstreamError(
                    f"Anthropic stream error: {error.get('message', '')}",
                    retryable=overloaded,
                    upstream_status=529 if overloaded else 0,
                )
            yield kind, data

    async def completions(self, target: Target, body: dict) -> UpstreamResult:
        raise UpstreamError(
            "Anthropic models do not offer the legacy completions endpoint; use chat completions.",
            code="invalid_request_error",
        )

    async def completions_stream(self, target: Target, body: dict) -> AsyncIterator[dict]:
        raise UpstreamError(
            "Anthropic models do not offer the legacy completions endpoint; use chat completions.",
            code="invalid_request_error",
        )
        yield {}  # pragma: no cover - makes this an async generator

    async def embeddings(self, target: Target, body: dict) -> UpstreamResult:
        raise UpstreamError(
            "Anthropic does not offer an embeddings endpoint.", code="invalid_request_error"
        )

    async def list_models(self, target: Target) -> list[dict]:
        payload = await http.get_json(
            f"{(target.base_url or DEFAULT_BASE_URL).rstrip('/')}/models",
            headers=self._headers(target),
        )
        return [
            {"id": item.get("id"), "object": "model", "created": 0, "owned_by": "anthropic"}
            for item in payload.get("data", [])
            if isinstance(item, dict)
        ]
