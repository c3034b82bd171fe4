"""Which attach rules a chat request matches. Pure: no ORM, no I/O.

Rules look at the last user message only (the original proxy's keyword detection), and at
most ``MAX_SCANNED_CHARS`` of it: a pattern runs on every chat request of its
organization, so its cost must not grow with the size of the prompt, and every search has a
timeout (the ``regex`` package's): a pattern with nested repetition cannot hold the event
loop, and so every other tenant's requests, for longer than ``SEARCH_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import functools
import logging

import regex

from tools.models import MatchKind

MAX_SCANNED_CHARS = 4000
SEARCH_TIMEOUT_SECONDS = 0.05

logger = logging.getLogger(__name__)


def last_user_text(messages) -> str:
    """The text of the last ``user`` message (text parts joined), bounded."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content[:MAX_SCANNED_CHARS]
        if isinstance(content, list):
            parts = [
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            ]
            return " ".join(parts)[:MAX_SCANNED_CHARS]
        return ""
    return ""


@functools.lru_cache(maxsize=4096)
def _compiled(kind: str, pattern: str) -> regex.Pattern | None:
    try:
        if kind == MatchKind.KEYWORD:
            return regex.compile(rf"(?<!\w){regex.escape(pattern.strip())}(?!\w)", regex.IGNORECASE)
        return regex.compile(pattern)
    except regex.error:
        return None  # validated on save; an old bad row matches nothing rather than failing


def rule_matches(kind: str, pattern: str, text: str) -> bool:
    compiled = _compiled(kind, pattern)
    if compiled is None:
        return False
    try:
        return compiled.search(text, timeout=SEARCH_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        logger.warning("a tool attach rule timed out and was skipped: %.60s", pattern)
        return False


def matching_tool_names(rules, text: str) -> list[str]:
    """Names of the tools whose rules match ``text``, in rule order, each once."""
    names: list[str] = []
    if not text:
        return names
    for rule in rules:
        if rule.tool_name not in names and rule_matches(rule.kind, rule.pattern, text):
            names.append(rule.tool_name)
    return names
