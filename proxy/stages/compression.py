"""Compression as a stage, and the exact prompt count that comes with it.

Last in the default list: the budget was reserved on the character estimate before this
work, whose cost grows with the prompt, is done (docs/decisions/0019). Embeddings are
counted, never compressed.
"""

from __future__ import annotations

import asyncio

from django.conf import settings

from accounts.selectors import Principal
from common.errors import InvalidRequest
from proxy import metrics
from proxy.pipeline.stage import Stage
from proxy.synthlang.engine import compress_messages, compress_text
from proxy.tokens import count_message_tokens, count_tokens

COMPRESSION_LEVELS = ("off", "low", "medium", "high")


def compression_level_for(principal: Principal, header: str) -> str:
    """Header, then the organization's setting, then the platform default."""
    if header:
        level = header.strip().lower()
        if level not in COMPRESSION_LEVELS:
            raise InvalidRequest(
                f"x-synthlang-compression must be one of {', '.join(COMPRESSION_LEVELS)}.",
                param="x-synthlang-compression",
            )
        return level
    if principal.compression_level:
        return principal.compression_level
    return settings.SYNTHLANG_DEFAULT_LEVEL if settings.USE_SYNTHLANG else "off"


# Below this many characters, compression and counting take well under a millisecond and
# run on the event loop; above it they run on a pool thread, so the loop keeps serving others.
OFF_LOOP_PROMPT_CHARS = 32_768


def _compress_blocking(call, level: str) -> int | None:
    """Compress the request in place; returns its prompt tokens when compression had to
    count them anyway (so they are not counted a second time)."""
    prompt_tokens = None
    if call.endpoint == "chat.completions":
        messages, stats = compress_messages(
            call.body["messages"],
            level=level,
            model=call.model,
            roles=call.principal.compression_roles or ("system", "user"),
            tool_results=call.principal.compression_tool_results,
        )
        if stats.tokens_saved > 0:
            call.body = {**call.body, "messages": messages}
            call.tokens_saved += stats.tokens_saved
        prompt_tokens = stats.tokens_after
    elif call.endpoint == "completions" and isinstance(call.body.get("prompt"), str):
        result = compress_text(call.body["prompt"], level=level, model=call.model)
        if result.tokens_saved > 0:
            call.body = {**call.body, "prompt": result.text}
            call.tokens_saved += result.tokens_saved
        prompt_tokens = result.tokens_after
    return prompt_tokens


def _prompt_tokens(call) -> int:
    if call.endpoint == "chat.completions":
        return count_message_tokens(call.body["messages"], model=call.model)
    field_name = "prompt" if call.endpoint == "completions" else "input"
    value = call.body.get(field_name)
    if isinstance(value, str):
        return count_tokens(value, model=call.model)
    total = 0
    for item in value or []:
        total += (
            count_tokens(item, model=call.model)
            if isinstance(item, str)
            else (len(item) if isinstance(item, list) else 1)
        )
    return total


def _compress_and_count_blocking(call, level: str) -> int:
    counted = _compress_blocking(call, level) if level != "off" else None
    return counted if counted is not None else _prompt_tokens(call)


async def _compress_and_count(call) -> None:
    """Compression and the exact prompt count, sized to the prompt: inline when small, on a
    pool thread when large, skipped beyond ``LARGE_PROMPT_CHARS`` (the estimate stands)."""
    level = "off"
    if call.endpoint != "embeddings":
        level = compression_level_for(call.principal, call.compression_header)
    if call.prompt_chars > settings.LARGE_PROMPT_CHARS:
        call.compression_level = "off"
        metrics.COMPRESSION_SKIPPED.inc()
        return
    call.compression_level = level
    if call.prompt_chars > OFF_LOOP_PROMPT_CHARS:
        counted = await asyncio.to_thread(_compress_and_count_blocking, call, level)
    else:
        counted = _compress_and_count_blocking(call, level)
    call.prompt_tokens_estimate = counted
    if call.tokens_saved:
        metrics.COMPRESSION_TOKENS_SAVED.labels(level=level).inc(call.tokens_saved)


class CompressionStage(Stage):
    name = "compression"
    endpoints = frozenset({"chat.completions", "completions", "embeddings"})

    async def on_request(self, call) -> None:
        await _compress_and_count(call)
