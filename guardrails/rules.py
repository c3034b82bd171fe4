"""Deny/allow rules: validated once, matched with a time bound.

Organization admins write these patterns, and a pattern runs over every request of the
organization: one catastrophic regex (``(a+)+$``) must not hold a worker. Patterns are
compiled with the ``regex`` package and every search has a timeout; a search that runs
out of time counts as a match of a deny rule (fail closed: an answer we could not check
is not let through) and is logged by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import regex

log = logging.getLogger(__name__)

MAX_PATTERN_CHARS = 500
MAX_RULES_PER_ORGANIZATION = 200
SEARCH_TIMEOUT_SECONDS = 0.05
# Only so much of a text is searched per rule: the time bound holds for any body size.
MAX_SEARCH_CHARS = 200_000


class RuleInvalid(ValueError):
    pass


@dataclass(frozen=True)
class CompiledRule:
    name: str
    action: str  # "deny" | "allow"
    target: str  # "request" | "response" | "both"
    compiled: regex.Pattern

    def applies_to(self, side: str) -> bool:
        return self.target in (side, "both")


def compile_pattern(kind: str, pattern: str) -> regex.Pattern:
    if not pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise RuleInvalid(f"A pattern has 1 to {MAX_PATTERN_CHARS} characters.")
    if kind == "phrase":
        # Whole words where the phrase starts and ends with a word character.
        source = regex.escape(pattern.strip())
        if pattern.strip()[:1].isalnum():
            source = r"\b" + source
        if pattern.strip()[-1:].isalnum():
            source += r"\b"
        return regex.compile(source, regex.IGNORECASE)
    try:
        return regex.compile(pattern, regex.IGNORECASE | regex.VERSION1)
    except regex.error as error:
        raise RuleInvalid(f"The regular expression is not valid: {error}.") from None


def check_pattern(kind: str, pattern: str) -> None:
    """Raise ``RuleInvalid`` unless the pattern compiles and answers quickly on a probe
    text built to trip the usual catastrophic shapes."""
    compiled = compile_pattern(kind, pattern)
    probe = "a" * 5000 + "!" + "ab" * 2000 + " 1" * 2000 + "x"
    try:
        compiled.search(probe, timeout=SEARCH_TIMEOUT_SECONDS)
    except TimeoutError:
        raise RuleInvalid(
            "The regular expression takes too long on long inputs (nested repetition?)."
        ) from None
    if compiled.search("") is not None:
        raise RuleInvalid("The pattern matches empty text, so it would match everything.")


@dataclass(frozen=True)
class Verdict:
    rule: str  # the deny rule's name


def evaluate(rules: tuple[CompiledRule, ...], side: str, texts: list[str]) -> Verdict | None:
    """The first deny rule matching one of ``texts`` in a span no allow rule covers."""
    denies = [rule for rule in rules if rule.action == "deny" and rule.applies_to(side)]
    if not denies:
        return None
    allows = [rule for rule in rules if rule.action == "allow" and rule.applies_to(side)]
    for text in texts:
        text = text[:MAX_SEARCH_CHARS]
        allowed_spans: list[tuple[int, int]] | None = None
        for rule in denies:
            try:
                matches = list(rule.compiled.finditer(text, timeout=SEARCH_TIMEOUT_SECONDS))
            except TimeoutError:
                log.warning("guardrail rule %r timed out: treated as a match", rule.name)
                return Verdict(rule.name)
            if not matches:
                continue
            if allowed_spans is None:
                allowed_spans = _allowed_spans(allows, text)
            for match in matches:
                if not any(s <= match.start() and match.end() <= e for s, e in allowed_spans):
                    return Verdict(rule.name)
    return None


def _allowed_spans(allows: list[CompiledRule], text: str) -> list[tuple[int, int]]:
    spans = []
    for rule in allows:
        try:
            spans.extend(
                m.span() for m in rule.compiled.finditer(text, timeout=SEARCH_TIMEOUT_SECONDS)
            )
        except TimeoutError:
            log.warning("guardrail allow rule %r timed out: ignored", rule.name)
    return spans
