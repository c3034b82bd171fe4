"""What a request is to the cache: its scope, its key, its question, and whether a
neighbour's answer may serve it or only an exact repeat."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings

from accounts.selectors import Principal
from proxy.response_cache.scope import own_scope
from proxy.semantic_cache.analysis import is_trivial
from proxy.semantic_cache.normalize import exact_cache_key, fingerprint, normalize_text
from proxy.semantic_cache.verify import MAX_VERIFIED_WORDS

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
    # Shared by several organizations (platform scope): entries belong to no organization.
    shared: bool = False
    # The organization asking (it pays for a verifier call, whatever the scope).
    requester_id: int | None = None


def cache_scope(principal: Principal) -> str:
    """The scope the principal's own entries live in (stats, clearing).

    A request of an organization on the platform scope may read and write a shared scope
    instead (``scope.scope_for``), which belongs to no organization.
    """
    return own_scope(principal)


def prompt_size(messages: list) -> int:
    """Characters of text in the messages: what an entry would have to hold."""
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(
                len(str(part.get("text", ""))) for part in content if isinstance(part, dict)
            )
    return total


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


def semantic_allowed_for(question: str, temperature) -> bool:
    """Whether a neighbour's answer may serve this question, or only an exact repeat.

    Greetings, thanks, one-word turns and text that normalises to nothing carry too little
    to be compared, a long document is past what the checks were built for, and a request
    for varied answers (high temperature) should not get a neighbour's.
    """
    if (
        isinstance(temperature, int | float)
        and temperature > settings.CACHE_SEMANTIC_MAX_TEMPERATURE
    ):
        return False
    if not normalize_text(question) or len(question.split()) > MAX_VERIFIED_WORDS:
        return False
    return not is_trivial(question)


def cache_context(
    principal: Principal, body: dict, *, scope: str | None = None, shared: bool = False
) -> CacheContext | None:
    extracted = final_user_text(body.get("messages") or [])
    if extracted is None:
        return None
    question, history = extracted
    shaping = {name: body.get(name) for name in ANSWER_SHAPING_FIELDS if name in body}
    context_fingerprint = fingerprint(parts={"history": history, "shaping": shaping})
    return CacheContext(
        scope=scope or cache_scope(principal),
        organization_id=None if shared else principal.organization_id,
        context_fingerprint=context_fingerprint,
        exact_key=exact_cache_key(text=question, context_fingerprint=context_fingerprint),
        question=question,
        model=str(body.get("model", "")),
        semantic_allowed=semantic_allowed_for(question, body.get("temperature")),
        shared=shared,
        requester_id=principal.organization_id,
    )


def response_size(response: dict) -> int:
    try:
        return len(json.dumps(response, ensure_ascii=False))
    except (TypeError, ValueError):
        return settings.CACHE_MAX_ENTRY_CHARS + 1  # not storable as JSON: never kept
