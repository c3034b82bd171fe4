"""The response cache as the gateway sees it: look up before the upstream, store after.

This module is the seam between the request pipeline and the cache's tiers; the
gateway calls only ``cache_lookup`` and ``cache_store``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

from django.conf import settings

from accounts.selectors import Principal

# Request fields that change the answer: they are part of the cache key.
ANSWER_SHAPING_FIELDS = (
    "model",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "n",
    "reasoning_effort",
    "modalities",
    "audio",
    "prediction",
    "parallel_tool_calls",
)


@dataclass(frozen=True)
class CacheContext:
    scope: str
    organization_id: int | None
    context_fingerprint: str
    exact_key: str
    question: str
    model: str
    semantic_allowed: bool


@dataclass(frozen=True)
class CacheLookup:
    status: str  # "hit" | "miss" | "off"
    tier: str = ""  # "exact" | "semantic" on a hit
    response: dict | None = None
    context: CacheContext | None = None
    details: dict = field(default_factory=dict)


OFF = CacheLookup(status="off")


def cache_scope(principal: Principal) -> str:
    if principal.cache_scope == "key":
        return f"key:{principal.key_id}"
    if principal.cache_scope == "platform":
        return "platform"
    return f"org:{principal.organization_id}"


def final_user_text(messages: list[dict]) -> tuple[str, list[dict]] | None:
    """The last message's text if it is a user turn, and the history before it."""
    if not messages or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    if isinstance(content, list):
        if any(part.get("type") != "text" for part in content if isinstance(part, dict)):
            return None  # images and audio: no sound way to compare them here
        content = "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    if not isinstance(content, str) or not content.strip():
        return None
    return content, messages[:-1]


def _digest(value) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()


def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


def cache_context(principal: Principal, body: dict) -> CacheContext | None:
    extracted = final_user_text(body.get("messages") or [])
    if extracted is None:
        return None
    question, history = extracted
    shaping = {name: body.get(name) for name in ANSWER_SHAPING_FIELDS if name in body}
    fingerprint = _digest({"history": history, "shaping": shaping})
    temperature = body.get("temperature")
    semantic_allowed = temperature is None or temperature <= settings.CACHE_SEMANTIC_MAX_TEMPERATURE
    return CacheContext(
        scope=cache_scope(principal),
        organization_id=None if principal.cache_scope == "platform" else principal.organization_id,
        context_fingerprint=fingerprint,
        exact_key=_digest([fingerprint, _normalised(question)]),
        question=question,
        model=str(body.get("model", "")),
        semantic_allowed=semantic_allowed,
    )


def caching_enabled(principal: Principal, control: str) -> bool:
    return settings.ENABLE_CACHE and principal.cache_enabled and control != "off"


# --- Tiers ---------------------------------------------------------------------------
# Exact tier in process memory: (scope, exact key) -> (expires at, response).
_exact: dict[tuple[str, str], tuple[float, dict]] = {}


async def cache_lookup(*, principal: Principal, body: dict, control: str) -> CacheLookup:
    """``control``: "" (normal), "off" (bypass entirely) or "refresh" (re-ask, replace)."""
    if not caching_enabled(principal, control) or body.get("n") not in (None, 1):
        return OFF
    context = cache_context(principal, body)
    if context is None:
        return OFF
    if control != "refresh":
        entry = _exact.get((context.scope, context.exact_key))
        if entry is not None and entry[0] > time.monotonic():
            return CacheLookup(status="hit", tier="exact", response=entry[1], context=context)
    return CacheLookup(status="miss", context=context)


async def cache_store(lookup: CacheLookup, *, response: dict) -> None:
    """Keep a complete, successful answer for the lookup's key."""
    if lookup.status != "miss" or lookup.context is None:
        return
    context = lookup.context
    _exact[(context.scope, context.exact_key)] = (
        time.monotonic() + settings.CACHE_TTL_SECONDS,
        response,
    )
