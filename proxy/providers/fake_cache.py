"""The fake upstream's prompt caches, so prompt caching is tested and measured offline.

Two emulations, deterministic and kept per process (a dict of prefix digests):

- OpenAI's, automatic: a prompt whose prefix of 1,024 tokens or more was seen before is
  reported as cached, in steps of 128 tokens above 1,024. Prefixes are compared message
  by message (the real cache compares tokens), which undercounts a little.
- Anthropic's, opt-in: only prefixes that end at a ``cache_control`` marker are stored,
  only when they reach the model's minimum length, and a later marker finds one within
  the 20 blocks before it. The first call reports the marked prefix as written
  (``cache_creation_input_tokens``), later ones as read (``cache_read_input_tokens``).

Entries never expire (the real caches keep them five minutes or more after each use):
a test or benchmark runs well inside that.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

from proxy.providers.prompt_cache import (
    LOOKBACK_BLOCKS,
    MAX_BREAKPOINTS,
    anthropic_minimum_cacheable_tokens,
)
from proxy.tokens import TOKENS_PER_REPLY_PRIMER, count_message_tokens, count_tokens

OPENAI_MINIMUM_TOKENS = 1024
OPENAI_INCREMENT_TOKENS = 128
MAX_ENTRIES = 200_000
# What the fake counts for a message's framing in the Messages API, beside its blocks.
ANTHROPIC_TOKENS_PER_MESSAGE = 3


class _Digests:
    """A bounded set of prefix digests with the token length each stands for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, int] = OrderedDict()

    def get(self, digest: bytes) -> int | None:
        with self._lock:
            tokens = self._entries.get(digest)
            if tokens is not None:
                self._entries.move_to_end(digest)
            return tokens

    def put(self, digest: bytes, tokens: int) -> None:
        with self._lock:
            self._entries[digest] = tokens
            self._entries.move_to_end(digest)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_openai = _Digests()
_anthropic = _Digests()


def prompt_caches_clear() -> None:
    _openai.clear()
    _anthropic.clear()


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()


# --- OpenAI -------------------------------------------------------------------------------


def openai_cached_tokens(*, scope: str, model: str, messages: list, tools=None) -> int:
    """Prompt tokens of this chat request that OpenAI would report as cached."""
    chain = hashlib.blake2b(_canonical([scope, model, tools or []]), digest_size=16)
    total = TOKENS_PER_REPLY_PRIMER
    prefixes = []
    for message in messages:
        chain.update(_canonical(message))
        total += count_message_tokens([message], model=model) - TOKENS_PER_REPLY_PRIMER
        prefixes.append((chain.copy().digest(), total))
    longest = 0
    for digest, tokens in reversed(prefixes):
        if _openai.get(digest) is not None:
            longest = tokens
            break
    for digest, tokens in prefixes:
        if tokens >= OPENAI_MINIMUM_TOKENS:
            _openai.put(digest, tokens)
    if longest < OPENAI_MINIMUM_TOKENS:
        return 0
    steps = (longest - OPENAI_MINIMUM_TOKENS) // OPENAI_INCREMENT_TOKENS
    return OPENAI_MINIMUM_TOKENS + steps * OPENAI_INCREMENT_TOKENS


# --- Anthropic ----------------------------------------------------------------------------


class CacheMarkerError(ValueError):
    """A request the Messages API refuses for its cache markers (a 400 upstream)."""


def _block_tokens(block: dict) -> int:
    if block.get("type") == "text":
        return count_tokens(str(block.get("text") or ""), model="claude")
    unmarked = {key: value for key, value in block.items() if key != "cache_control"}
    return count_tokens(json.dumps(unmarked, ensure_ascii=False), model="claude")


def _request_blocks(request: dict) -> list[tuple[dict, int]]:
    """Every cacheable block of a Messages request in cache order (tools, system,
    messages), each with its token count."""
    blocks: list[tuple[dict, int]] = []
    for tool in request.get("tools") or []:
        blocks.append((tool, _block_tokens(tool)))
    system = request.get("system")
    if isinstance(system, str) and system:
        blocks.append(
            ({"type": "text", "text": system}, _block_tokens({"type": "text", "text": system}))
        )
    elif isinstance(system, list):
        blocks.extend((block, _block_tokens(block)) for block in system if isinstance(block, dict))
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        framing = ANTHROPIC_TOKENS_PER_MESSAGE
        for block in content or []:
            if isinstance(block, dict):
                blocks.append((block, _block_tokens(block) + framing))
                framing = 0
    return blocks


def anthropic_cache_usage(*, scope: str, request: dict) -> dict:
    """The usage Anthropic would report for this Messages request, output excepted:
    ``input_tokens`` (after the last hit or write), ``cache_creation_input_tokens``
    and ``cache_read_input_tokens``. Raises ``CacheMarkerError`` as the API would."""
    blocks = _request_blocks(request)
    markers = [index for index, (block, _) in enumerate(blocks) if "cache_control" in block]
    for index in markers:
        block = blocks[index][0]
        if block.get("type") == "text" and not block.get("text"):
            raise CacheMarkerError("cache_control cannot be set for empty text blocks")
    if len(markers) > MAX_BREAKPOINTS:
        raise CacheMarkerError(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(markers)}."
        )
    if request.get("cache_control") and blocks and (len(blocks) - 1) not in markers:
        markers.append(len(blocks) - 1)  # automatic caching marks the last block
    model = str(request.get("model") or "")
    chain = hashlib.blake2b(_canonical([scope, model]), digest_size=16)
    digests, lengths, total = [], [], 0
    for block, tokens in blocks:
        chain.update(_canonical({k: v for k, v in block.items() if k != "cache_control"}))
        total += tokens
        digests.append(chain.copy().digest())
        lengths.append(total)
    read_end = -1
    for marker in markers:
        for index in range(marker, max(marker - LOOKBACK_BLOCKS, 0) - 1, -1):
            if _anthropic.get(digests[index]) is not None:
                read_end = max(read_end, index)
                break
    read = lengths[read_end] if read_end >= 0 else 0
    minimum = anthropic_minimum_cacheable_tokens(model)
    written = [marker for marker in markers if marker > read_end and lengths[marker] >= minimum]
    for marker in written:
        _anthropic.put(digests[marker], lengths[marker])
    write = lengths[max(written)] - read if written else 0
    return {
        "input_tokens": total - read - write,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }
