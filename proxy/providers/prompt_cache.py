"""The upstream providers' own prompt caches: what to ask of them, per organization.

Anthropic caches a prompt prefix only up to a ``cache_control`` breakpoint the request
marks, and bills cached reads at a tenth of the input price (writes at 1.25 times).
OpenAI caches every prefix of 1,024 tokens or more by itself and routes requests by a
hash of the prefix and of an optional ``prompt_cache_key``. The decisions behind what is
done here are in docs/decisions/0012-provider-prompt-caching.md.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from functools import lru_cache

from django.conf import settings
from django.utils.crypto import salted_hmac

from proxy.providers.base import NO_PROMPT_CACHE, PromptCache, Target
from proxy.tokens import count_tokens

KEY_SCOPES = ("off", "organization", "key")

# --- Per organization -------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _keyed_hash(scope: str, owner_id: int, secret: str) -> str:
    # A keyed hash: the upstream (and anyone who sees its logs) can group requests by it
    # but cannot tell which organization or key it stands for, nor guess the next one.
    return salted_hmac(
        "synthlang.prompt_cache_key", f"{scope}:{owner_id}", secret=secret, algorithm="sha256"
    ).hexdigest()[:32]


def prompt_cache_key(*, scope: str, organization_id: int, key_id: int | None) -> str:
    """The ``prompt_cache_key`` for an organization or one of its keys; "" for none."""
    if scope == "organization":
        return _keyed_hash("organization", int(organization_id), settings.SECRET_KEY)
    if scope == "key" and key_id:
        return _keyed_hash("key", int(key_id), settings.SECRET_KEY)
    return ""


def prompt_cache_for(principal) -> PromptCache:
    """What the caller's organization set for the providers' prompt caches."""
    breakpoints = bool(getattr(principal, "prompt_cache_breakpoints", False))
    key = prompt_cache_key(
        scope=getattr(principal, "prompt_cache_key_scope", "off"),
        organization_id=principal.organization_id,
        key_id=principal.key_id,
    )
    if not breakpoints and not key:
        return NO_PROMPT_CACHE
    return PromptCache(breakpoints=breakpoints, key=key)


def with_prompt_cache(target: Target, principal) -> Target:
    return dataclasses.replace(target, prompt_cache=prompt_cache_for(principal))


# --- Anthropic: where the breakpoints go ---------------------------------------------------

EPHEMERAL = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4  # the Messages API refuses a request with more
LOOKBACK_BLOCKS = 20  # how far before a marker Anthropic looks for an earlier entry

# Anthropic caches nothing below a minimum prefix length, which depends on the model.
# Anthropic's prompt-caching guide ("Cache limitations", platform.claude.com/docs/en/
# build-with-claude/prompt-caching) gave, as read on 2026-12-02: 4,096 tokens for Opus 4.5
# and 4.6 and for Haiku 4.5; 2,048 for Opus 4.7 and for Haiku 3 and 3.5; 512 for Opus 5;
# 1,024 for the other models (Sonnet 4 to 5, Opus 4, 4.1 and 4.8). A marker below the
# minimum does no harm (the request is served uncached) but wastes one of the four, so
# markers go only where the prefix reaches the minimum. A model not listed gets 1,024.
_MINIMUM_CACHEABLE_TOKENS = (
    ("claude-opus-4-5*", 4096),
    ("claude-opus-4-6*", 4096),
    ("claude-haiku-4-5*", 4096),
    ("claude-opus-4-7*", 2048),
    ("claude-3-5-haiku*", 2048),
    ("claude-3-haiku*", 2048),
    ("claude-opus-5", 512),
    ("claude-opus-5-20*", 512),
)
DEFAULT_MINIMUM_CACHEABLE_TOKENS = 1024


def anthropic_minimum_cacheable_tokens(model: str) -> int:
    name = (model or "").strip().lower().rsplit("/", 1)[-1]
    for pattern, minimum in _MINIMUM_CACHEABLE_TOKENS:
        if fnmatch.fnmatchcase(name, pattern):
            return minimum
    return DEFAULT_MINIMUM_CACHEABLE_TOKENS


def _block_text(block: dict) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text") or "")
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return "".join(_block_text(part) for part in content if isinstance(part, dict))
        return str(content or "")
    if kind == "tool_use":
        return f"{block.get('name') or ''}{json.dumps(block.get('input') or {})}"
    return ""  # images are billed by size, which text tokens cannot estimate: count none


class _PrefixLength:
    """Tokens of a prefix, counted only until they reach the minimum: the answer needed
    is "is it long enough", and counting a long conversation in full would be waste."""

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum
        self.tokens = 0

    @property
    def reached(self) -> bool:
        return self.tokens >= self.minimum

    def add(self, text: str) -> None:
        if text and not self.reached:
            # Claude's tokenizer is not public; cl100k_base is the closest public one
            # (proxy/tokens.py). Near the minimum the estimate may be off by a few
            # percent: a marker a little short is served uncached, no error.
            self.tokens += count_tokens(text, model="claude")


def _last_markable(blocks: list) -> dict | None:
    # The Messages API refuses cache_control on an empty text block.
    for block in reversed(blocks):
        if isinstance(block, dict) and not (block.get("type") == "text" and not block.get("text")):
            return block
    return None


def client_marked_cache(body: dict) -> bool:
    """Whether an OpenAI-format request already carries ``cache_control`` anywhere."""
    if "cache_control" in body:
        return True
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and (
            "cache_control" in tool or "cache_control" in (tool.get("function") or {})
        ):
            return True
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if "cache_control" in message:
            return True
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(part, dict) and "cache_control" in part for part in content
        ):
            return True
    return False


def _newest_user_turn(messages: list, before: int) -> int:
    return next((i for i in range(before - 1, -1, -1) if messages[i].get("role") == "user"), -1)


def place_breakpoints(request: dict, *, model: str) -> int:
    """Mark an Anthropic Messages request's stable prefix for the prompt cache, in place.

    Each marker goes only where the prefix it closes reaches the model's minimum: after
    the tools, after the system prompt, and after the last message before the newest user
    turn (the conversation so far, which the next call repeats). Anthropic finds an
    earlier entry only within the 20 blocks before a marker; when this turn added more
    than that since the previous turn's marker (an agent step with many tool calls), a
    fourth marker repeats the previous turn's position so its entry is still read.
    Returns how many were placed.
    """
    length = _PrefixLength(anthropic_minimum_cacheable_tokens(model))
    placed = 0
    tools = request.get("tools")
    if tools:
        length.add(json.dumps(tools, ensure_ascii=False))
        if length.reached:
            tools[-1]["cache_control"] = dict(EPHEMERAL)
            placed += 1
    system = request.get("system")
    if system:
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
        for block in blocks:
            length.add(_block_text(block))
        target = _last_markable(blocks)
        if length.reached and target is not None:
            target["cache_control"] = dict(EPHEMERAL)
            request["system"] = blocks
            placed += 1
    messages = request.get("messages") or []
    newest = _newest_user_turn(messages, len(messages))
    if newest <= 0:
        return placed
    long_enough_from = 0 if length.reached else None
    for index, message in enumerate(messages[:newest]):
        for block in message.get("content") or []:
            length.add(_block_text(block))
        if long_enough_from is None and length.reached:
            long_enough_from = index
    if long_enough_from is None:
        return placed
    ends = [newest - 1]
    previous = _newest_user_turn(messages, newest)
    if previous > 0:
        added = sum(len(message.get("content") or []) for message in messages[previous:newest])
        if added > LOOKBACK_BLOCKS and previous - 1 >= long_enough_from:
            ends.insert(0, previous - 1)
    for end in ends:
        target = _last_markable(messages[end].get("content") or [])
        if target is not None:
            target["cache_control"] = dict(EPHEMERAL)
            placed += 1
    assert placed <= MAX_BREAKPOINTS
    return placed
