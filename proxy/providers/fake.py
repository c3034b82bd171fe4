"""An offline, deterministic upstream: `make run`, the tests and the benchmarks use it.

The same answer for the same request, token counts from the real tokenizer, and
behaviour controlled by the upstream model name so tests can stage failures:
``fake-fail-<status>`` always fails with that HTTP status, ``fake-slow-<ms>`` waits
that long before answering (and between stream chunks, a tenth of it).

Chat answers honour tools, structured output, ``n`` and log probabilities
(``fake_chat``), embeddings ``dimensions`` and ``encoding_format: base64``; a request the
real API refuses is a 400 (``FakeRequestError``).

Usage reports prompt caching as the providers do (``fake_cache``): OpenAI's automatic
cache here, Anthropic's marked one in ``messages_body`` (the HTTP fake upstream's
Messages API).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import struct
import time
from collections.abc import AsyncIterator, Iterator

from django.conf import settings

from proxy.providers.base import Target, UpstreamResult, classify_status
from proxy.providers.fake_cache import anthropic_cache_usage, openai_cached_tokens
from proxy.providers.fake_chat import (
    FakeRequestError,
    answer_words,
    argument_pieces,
    chat_plan,
    completion_tokens_of,
    logprobs_of,
    max_tokens_of,
    request_seed,
)
from proxy.providers.fake_files import FakeFilesMethods
from proxy.providers.fake_surface import FakeSurfaceMethods
from proxy.tokens import count_message_tokens, count_tokens

FAKE_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o4-mini",
    "text-embedding-3-small",
    "fake-echo",
)
EMBEDDING_DIMENSIONS = 16
# text-embedding-3-large's size, the largest OpenAI serves.
MAX_EMBEDDING_DIMENSIONS = 3072
_FAIL = re.compile(r"fake-fail-(\d{3})")
_SLOW = re.compile(r"fake-slow-(\d+)")


def _response_id(prefix: str, body: dict) -> str:
    return f"{prefix}-fake{request_seed(body)}"


def staged_failure(model: str) -> int | None:
    match = _FAIL.fullmatch(model)
    return int(match.group(1)) if match else None


def staged_latency_ms(model: str) -> float:
    match = _SLOW.fullmatch(model)
    return float(match.group(1)) if match else float(settings.FAKE_LATENCY_MS)


def _prompt_usage(body: dict, *, model: str, cache_scope: str) -> dict:
    messages = body.get("messages") or []
    prompt_tokens = count_message_tokens(messages, model=model)
    tools = body.get("tools")
    if tools:
        # The upstream reads the tool definitions as part of the prompt, and bills them.
        prompt_tokens += count_tokens(json.dumps(tools, ensure_ascii=False), model=model)
    cached = openai_cached_tokens(scope=cache_scope, model=model, messages=messages, tools=tools)
    return {"prompt_tokens": prompt_tokens, "cached_tokens": min(cached, prompt_tokens)}


def _chat_usage(body: dict, plans, *, model: str, cache_scope: str) -> dict:
    prompt = _prompt_usage(body, model=model, cache_scope=cache_scope)
    completion_tokens = completion_tokens_of(plans, model=model)
    return {
        "prompt_tokens": prompt["prompt_tokens"],
        "completion_tokens": completion_tokens,
        "total_tokens": prompt["prompt_tokens"] + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": prompt["cached_tokens"]},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _wants_logprobs(body: dict) -> int | None:
    """The number of alternatives per token when log probabilities are asked, else None."""
    if body.get("logprobs") is not True:
        return None
    top = body.get("top_logprobs")
    return top if isinstance(top, int) and not isinstance(top, bool) else 0


def _tool_call(call) -> dict:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def chat_body(body: dict, *, model: str, cache_scope: str = "") -> dict:
    """The answer; ``cache_scope`` is whose prompt cache it reads (the upstream key).

    Raises ``FakeRequestError`` for a request the real API refuses.
    """
    plans = chat_plan(body)
    top = _wants_logprobs(body)
    choices = []
    for plan in plans:
        message: dict = {"role": "assistant", "content": plan.content, "refusal": None}
        if plan.tool_calls:
            message["tool_calls"] = [_tool_call(call) for call in plan.tool_calls]
        logprobs = None
        if top is not None:
            entries = logprobs_of(plan.pieces, model=model, top=top)
            flat = [entry for piece in entries for entry in piece]
            logprobs = {"content": flat if plan.pieces else None, "refusal": None}
        choices.append(
            {
                "index": plan.index,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": plan.finish_reason,
            }
        )
    return {
        "id": _response_id("chatcmpl", body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": choices,
        "usage": _chat_usage(body, plans, model=model, cache_scope=cache_scope),
    }


def _choice_deltas(
    plan, *, model: str, top: int | None
) -> Iterator[tuple[dict, dict | None, str | None]]:
    """One choice's stream: (delta, logprobs, finish_reason) triples, as OpenAI sends them."""
    if plan.tool_calls:
        for position, call in enumerate(plan.tool_calls):
            header = {
                "index": position,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            opening = {"role": "assistant", "content": None} if position == 0 else {}
            yield {**opening, "tool_calls": [header]}, None, None
            for piece in argument_pieces(call.arguments):
                yield (
                    {"tool_calls": [{"index": position, "function": {"arguments": piece}}]},
                    None,
                    None,
                )
    else:
        yield {"role": "assistant", "content": ""}, None, None
        entries = logprobs_of(plan.pieces, model=model, top=top) if top is not None else None
        for number, piece in enumerate(plan.pieces):
            logprobs = {"content": entries[number], "refusal": None} if entries else None
            yield {"content": piece}, logprobs, None
    yield {}, None, plan.finish_reason


def chat_chunks(body: dict, *, model: str, cache_scope: str = "") -> Iterator[dict]:
    """The stream of the same answer, choices interleaved (each chunk names its choice's
    index); the final usage chunk as OpenAI sends it. Raises ``FakeRequestError`` before
    the first chunk for a request the real API refuses."""
    plans = chat_plan(body)
    top = _wants_logprobs(body)
    base = {
        "id": _response_id("chatcmpl", body),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
    }
    usage = _chat_usage(body, plans, model=model, cache_scope=cache_scope)
    return _interleaved(plans, base, usage, model=model, top=top)


def _interleaved(plans, base: dict, usage: dict, *, model: str, top: int | None) -> Iterator[dict]:
    streams = [(plan.index, _choice_deltas(plan, model=model, top=top)) for plan in plans]
    while streams:
        running = []
        for index, deltas in streams:
            step = next(deltas, None)
            if step is None:
                continue
            delta, logprobs, finish = step
            yield {
                **base,
                "choices": [
                    {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
                ],
            }
            running.append((index, deltas))
        streams = running
    yield {**base, "choices": [], "usage": usage}


def completion_body(body: dict, *, model: str) -> dict:
    prompt = body.get("prompt")
    prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
    text = "".join(answer_words(prompt_text, max_tokens_of(body)))
    prompt_tokens = count_tokens(prompt_text, model=model)
    completion_tokens = count_tokens(text, model=model)
    return {
        "id": _response_id("cmpl", body),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def completion_chunks(body: dict, *, model: str) -> Iterator[dict]:
    full = completion_body(body, model=model)
    text = full["choices"][0]["text"]
    base = {
        "id": full["id"],
        "object": "text_completion",
        "created": full["created"],
        "model": model,
    }
    for word in re.findall(r"\s*\S+", text):
        yield {
            **base,
            "choices": [{"index": 0, "text": word, "logprobs": None, "finish_reason": None}],
        }
    yield {**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]}
    yield {**base, "choices": [], "usage": full["usage"]}


def _vector(text: str, dimensions: int) -> list[float]:
    # One digest gives 32 components; a longer vector takes further digests of the text.
    digest = hashlib.sha256(text.encode()).digest()
    block = 1
    while len(digest) < dimensions:
        digest += hashlib.sha256(f"{block}:{text}".encode()).digest()
        block += 1
    raw = [(digest[i] - 127.5) / 127.5 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def _base64_floats(vector: list[float]) -> str:
    """The vector as OpenAI's ``encoding_format: base64`` sends it: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _embedding_inputs(inputs) -> list[tuple[str, int | None]]:
    """Each input as (text, its token count when it is already tokens)."""
    if isinstance(inputs, str):
        return [(inputs, None)]
    items = list(inputs or [])
    if items and all(isinstance(item, int) for item in items):
        return [(" ".join(map(str, items)), len(items))]  # one input given as token ids
    return [
        (item, None) if isinstance(item, str) else (" ".join(map(str, item)), len(item))
        for item in items
    ]


def embedding_body(body: dict, *, model: str) -> dict:
    """Raises ``FakeRequestError`` for a size or format the real API refuses."""
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    if not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
        raise FakeRequestError(
            f"'dimensions' must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}.",
            param="dimensions",
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise FakeRequestError(
            "'encoding_format' must be 'float' or 'base64'.", param="encoding_format"
        )
    inputs = _embedding_inputs(body.get("input"))
    tokens = sum(
        count if count is not None else count_tokens(text, model=model) for text, count in inputs
    )
    data = []
    for index, (text, _) in enumerate(inputs):
        vector = _vector(text, dimensions)
        encoded = _base64_floats(vector) if encoding == "base64" else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --- Anthropic's Messages API, for the HTTP fake upstream ----------------------------------


def _last_user_blocks_text(messages: list) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(
                str(block.get("text", ""))
                for block in content or []
                if isinstance(block, dict) and block.get("type") == "text"
            )
    return ""


def _messages_answer(request: dict) -> tuple[list[str], str]:
    natural = answer_words(_last_user_blocks_text(request.get("messages")), None)
    limit = request.get("max_tokens")
    words = natural[: max(1, limit)] if isinstance(limit, int) else natural
    return words, "max_tokens" if len(words) < len(natural) else "end_turn"


def _server_tool_use(request: dict) -> dict:
    """One request per web search or web fetch server tool offered, counted in the usage
    as Anthropic counts them (``web_search_requests``); nothing is searched."""
    counts: dict[str, int] = {}
    for tool in request.get("tools") or ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind.startswith(("web_search_", "web_fetch_")):
            name = f"{kind.rsplit('_', 1)[0]}_requests"  # web_search_20250305
            counts[name] = counts.get(name, 0) + 1
    return counts


def messages_body(request: dict, *, cache_scope: str = "") -> dict:
    """A Messages API response, its usage from the Anthropic prompt-cache emulation.

    Raises ``fake_cache.CacheMarkerError`` for cache markers the real API refuses.
    """
    usage = anthropic_cache_usage(scope=cache_scope, request=request)
    words, stop_reason = _messages_answer(request)
    text = "".join(words)
    usage["output_tokens"] = count_tokens(text, model="claude")
    server_tools = _server_tool_use(request)
    if server_tools:
        usage["server_tool_use"] = server_tools
    return {
        "id": _response_id("msg", request),
        "type": "message",
        "role": "assistant",
        "model": str(request.get("model") or ""),
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def messages_events(request: dict, *, cache_scope: str = "") -> Iterator[tuple[str, dict]]:
    """The same answer as the Messages API streams it: ``(event name, data)`` pairs."""
    full = messages_body(request, cache_scope=cache_scope)
    usage = full["usage"]
    # Anthropic's message_delta carries the output count and, cumulative, the server
    # tools' requests.
    final_usage = {"output_tokens": usage["output_tokens"]}
    if "server_tool_use" in usage:
        final_usage["server_tool_use"] = usage["server_tool_use"]
    start = {**full, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    yield (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        },
    )
    words, _ = _messages_answer(request)
    for word in words:
        yield (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": word},
            },
        )
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": full["stop_reason"], "stop_sequence": None},
            "usage": final_usage,
        },
    )
    yield "message_stop", {"type": "message_stop"}


def model_list() -> list[dict]:
    return [
        {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "synthlang-fake"}
        for name in FAKE_MODELS
    ]


def _refusal(error: FakeRequestError):
    """The 400 a real upstream answers a request it refuses, as the HTTP provider sees it."""
    return classify_status(400, error.body(), None)


class FakeProvider(FakeSurfaceMethods, FakeFilesMethods):
    """The in-process fake: no network at all."""

    name = "fake"

    def _refused(self, error: FakeRequestError):
        return _refusal(error)

    def _answer_batch_line(self, body: dict, url: str) -> dict:
        model = str(body.get("model") or "")
        if url == "/v1/embeddings":
            return embedding_body(body, model=model)
        return chat_body(body, model=model)

    async def _before(self, target: Target) -> float:
        status = staged_failure(target.upstream_model)
        latency = staged_latency_ms(target.upstream_model)
        if latency:
            await asyncio.sleep(latency / 1000)
        if status is not None:
            raise classify_status(status, {"error": {"message": f"staged {status}"}}, None)
        return latency

    async def chat(self, target: Target, body: dict) -> UpstreamResult:
        await self._before(target)
        try:
            answer = chat_body(body, model=target.upstream_model, cache_scope=target.api_key)
        except FakeRequestError as error:
            raise _refusal(error) from None
        return UpstreamResult(body=answer)

    async def chat_stream(self, target: Target, body: dict) -> AsyncIterator[dict]:
        latency = await self._before(target)
        try:
            chunks = chat_chunks(body, model=target.upstream_model, cache_scope=target.api_key)
        except FakeRequestError as error:
            raise _refusal(error) from None
        for chunk in chunks:
            if latency:
                await asyncio.sleep(latency / 10000)
            yield chunk

    async def completions(self, target: Target, body: dict) -> UpstreamResult:
        await self._before(target)
        return UpstreamResult(body=completion_body(body, model=target.upstream_model))

    async def completions_stream(self, target: Target, body: dict) -> AsyncIterator[dict]:
        latency = await self._before(target)
        for chunk in completion_chunks(body, model=target.upstream_model):
            if latency:
                await asyncio.sleep(latency / 10000)
            yield chunk

    async def embeddings(self, target: Target, body: dict) -> UpstreamResult:
        await self._before(target)
        try:
            return UpstreamResult(body=embedding_body(body, model=target.upstream_model))
        except FakeRequestError as error:
            raise _refusal(error) from None

    async def list_models(self, target: Target) -> list[dict]:
        return model_list()
