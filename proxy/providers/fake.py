"""An offline, deterministic upstream: `make run`, the tests and the benchmarks use it.

The same answer for the same request, token counts from the real tokenizer, and
behaviour controlled by the upstream model name so tests can stage failures:
``fake-fail-<status>`` always fails with that HTTP status, ``fake-slow-<ms>`` waits
that long before answering (and between stream chunks, a tenth of it).

Usage reports prompt caching as the providers do (``fake_cache``): OpenAI's automatic
cache here, Anthropic's marked one in ``messages_body`` (the HTTP fake upstream's
Messages API).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections.abc import AsyncIterator, Iterator

from django.conf import settings

from proxy.providers.base import Target, UpstreamResult, classify_status
from proxy.providers.fake_cache import anthropic_cache_usage, openai_cached_tokens
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
_FAIL = re.compile(r"fake-fail-(\d{3})")
_SLOW = re.compile(r"fake-slow-(\d+)")


def _last_user_text(messages: list) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def answer_words(prompt_text: str, max_tokens: int | None) -> list[str]:
    """The answer, word by word: a fixed opening and an echo of the question."""
    words = ["This", "is", "a", "fake", "answer", "to:"] + prompt_text.split()[:40]
    if max_tokens is not None:
        words = words[: max(1, max_tokens)]
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def _response_id(prefix: str, body: dict) -> str:
    digest = hashlib.sha256(repr(sorted(body.items(), key=str)).encode()).hexdigest()[:24]
    return f"{prefix}-fake{digest}"


def _max_tokens(body: dict) -> int | None:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return value if isinstance(value, int) else None


def staged_failure(model: str) -> int | None:
    match = _FAIL.fullmatch(model)
    return int(match.group(1)) if match else None


def staged_latency_ms(model: str) -> float:
    match = _SLOW.fullmatch(model)
    return float(match.group(1)) if match else float(settings.FAKE_LATENCY_MS)


def _prompt_usage(body: dict, *, model: str, cache_scope: str) -> dict:
    messages = body.get("messages") or []
    prompt_tokens = count_message_tokens(messages, model=model)
    cached = openai_cached_tokens(
        scope=cache_scope, model=model, messages=messages, tools=body.get("tools")
    )
    return {"prompt_tokens": prompt_tokens, "cached_tokens": min(cached, prompt_tokens)}


def chat_body(body: dict, *, model: str, cache_scope: str = "") -> dict:
    """The answer; ``cache_scope`` is whose prompt cache it reads (the upstream key)."""
    messages = body.get("messages") or []
    text = "".join(answer_words(_last_user_text(messages), _max_tokens(body)))
    prompt = _prompt_usage(body, model=model, cache_scope=cache_scope)
    prompt_tokens = prompt["prompt_tokens"]
    completion_tokens = count_tokens(text, model=model)
    return {
        "id": _response_id("chatcmpl", body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop" if _max_tokens(body) is None else "length",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": prompt["cached_tokens"]},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def chat_chunks(body: dict, *, model: str, cache_scope: str = "") -> Iterator[dict]:
    """The stream of the same answer; the final usage chunk as OpenAI sends it."""
    messages = body.get("messages") or []
    words = answer_words(_last_user_text(messages), _max_tokens(body))
    base = {
        "id": _response_id("chatcmpl", body),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
    }
    yield {
        **base,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    for word in words:
        yield {
            **base,
            "choices": [
                {"index": 0, "delta": {"content": word}, "logprobs": None, "finish_reason": None}
            ],
        }
    finish = "stop" if _max_tokens(body) is None else "length"
    yield {
        **base,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}],
    }
    prompt = _prompt_usage(body, model=model, cache_scope=cache_scope)
    prompt_tokens = prompt["prompt_tokens"]
    completion_tokens = count_tokens("".join(words), model=model)
    yield {
        **base,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": prompt["cached_tokens"]},
        },
    }


def completion_body(body: dict, *, model: str) -> dict:
    prompt = body.get("prompt")
    prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
    text = "".join(answer_words(prompt_text, _max_tokens(body)))
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
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def embedding_body(body: dict, *, model: str) -> dict:
    inputs = body.get("input")
    items = [inputs] if isinstance(inputs, str) else list(inputs or [])
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    texts = [item if isinstance(item, str) else " ".join(map(str, item)) for item in items]
    tokens = sum(count_tokens(text, model=model) for text in texts)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _vector(text, dimensions)}
            for i, text in enumerate(texts)
        ],
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


def messages_body(request: dict, *, cache_scope: str = "") -> dict:
    """A Messages API response, its usage from the Anthropic prompt-cache emulation.

    Raises ``fake_cache.CacheMarkerError`` for cache markers the real API refuses.
    """
    usage = anthropic_cache_usage(scope=cache_scope, request=request)
    words, stop_reason = _messages_answer(request)
    text = "".join(words)
    usage["output_tokens"] = count_tokens(text, model="claude")
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
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def model_list() -> list[dict]:
    return [
        {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "synthlang-fake"}
        for name in FAKE_MODELS
    ]


class FakeProvider:
    """The in-process fake: no network at all."""

    name = "fake"

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
        return UpstreamResult(
            body=chat_body(body, model=target.upstream_model, cache_scope=target.api_key)
        )

    async def chat_stream(self, target: Target, body: dict) -> AsyncIterator[dict]:
        latency = await self._before(target)
        chunks = chat_chunks(body, model=target.upstream_model, cache_scope=target.api_key)
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
        return UpstreamResult(body=embedding_body(body, model=target.upstream_model))

    async def list_models(self, target: Target) -> list[dict]:
        return model_list()
