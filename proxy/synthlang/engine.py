"""SynthLang compression: `compress_text` and `compress_messages`.

Pipeline for one text (prose only; fenced code is cut out first and never touched):

1. `low`+: minify embedded multi-line JSON (whitespace outside strings only).
2. Mask hard-protected spans (code, URLs, numbers, quotes, names, payload lines...) with
   private-use placeholder characters, so no rule can reach into them.
3. `medium`+: remove politeness formulas (before step 4: their "if"/"not" are courtesy).
4. Mask every sentence that holds a negation, condition or bound.
5. `medium`+: verbose -> concise phrases, filler words, hedges. `high`: SynthLang symbols that
   are cheaper on the target tokenizer, and article dropping.
6. Whitespace normalisation (trailing spaces, blank-line runs, inner space runs; indentation is
   never touched), then unmask.

The result is counted on the target model's tokenizer and discarded if it is not shorter.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from proxy.synthlang import protect, rules
from proxy.tokens import count_message_tokens, count_tokens, encoding_name_for_model

LEVELS = ("off", "low", "medium", "high")
_LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
DEFAULT_ROLES = ("system", "user")

# Placeholders: plane 15 for hard spans, plane 16 for condition sentences (which may contain
# hard placeholders). Each plane has 65,534 usable code points, so prose is processed in chunks
# small enough never to run out.
_HARD_BASE = 0xF0000
_CONDITION_BASE = 0x100000
_PLANE_SIZE = 0xFFFE
_CHUNK_CHARS = 60_000
_HARD_PLACEHOLDER_RE = re.compile("[\U000f0000-\U000ffffd]")
_CONDITION_PLACEHOLDER_RE = re.compile("[\U00100000-\U0010fffd]")

# Whitespace between JSON tokens; string literals are matched first and kept verbatim.
_JSON_WHITESPACE_RE = re.compile(r'("(?:\\.|[^"\\])*")|\s+')

# Verbatim repeats across turns shorter than this are left alone: short repeats ("Thanks.",
# an account number) are cheap and often deliberate.
_MIN_REPEAT_CHARS = 40
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])[ \t]+(?=\S)")
_PARAGRAPH_SPLIT_RE = re.compile(r"(\n[ \t]*\n)")


class CompressionLevelError(ValueError):
    """An unknown compression level was requested."""


@dataclass(frozen=True)
class CompressionResult:
    text: str
    level: str
    encoding: str
    tokens_before: int
    tokens_after: int

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after

    @property
    def changed(self) -> bool:
        return self.tokens_after != self.tokens_before


@dataclass(frozen=True)
class MessagesCompressionStats:
    level: str
    encoding: str
    tokens_before: int
    tokens_after: int
    messages_changed: int
    repeats_removed: int

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after


def normalize_level(level: str | None) -> str:
    """Canonical level name; raises CompressionLevelError for anything else."""
    name = (level or "off").strip().lower()
    if name not in _LEVEL_RANK:
        raise CompressionLevelError(
            f"unknown compression level {level!r}; expected one of {', '.join(LEVELS)}"
        )
    return name


class _Masker:
    """Replaces spans with single placeholder characters and restores them."""

    def __init__(self, base: int, pattern: re.Pattern):
        self.base = base
        self.pattern = pattern
        self.originals: list[str] = []

    def mask(self, text: str, spans: list[tuple[int, int]]) -> str:
        if not spans:
            return text
        parts = []
        position = 0
        for start, end in spans:
            parts.append(text[position:start])
            parts.append(chr(self.base + len(self.originals)))
            self.originals.append(text[start:end])
            position = end
        parts.append(text[position:])
        return "".join(parts)

    def unmask(self, text: str) -> str:
        if not self.originals:
            return text
        originals = self.originals
        base = self.base
        return self.pattern.sub(lambda match: originals[ord(match.group()) - base], text)


def _minify_json(text: str) -> str:
    spans = [(start, end) for start, end in protect.json_spans(text) if "\n" in text[start:end]]
    if not spans:
        return text
    parts = []
    position = 0
    for start, end in spans:
        parts.append(text[position:start])
        parts.append(_JSON_WHITESPACE_RE.sub(lambda match: match.group(1) or "", text[start:end]))
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _normalise_whitespace(text: str) -> str:
    # Only spaces before a line break: a chunk may end in a space that separates two words.
    text = rules.TRAILING_SPACE_RE.sub("", text)
    if "\n\n\n" in text or "\n \n" in text or "\n\t\n" in text:
        text = rules.BLANK_LINES_RE.sub("\n\n", text)
    return rules.collapse_inner_spaces(text)


def _rewrite_prose(text: str, rank: int, encoding: str, telegraphic: bool) -> str:
    text = _minify_json(text)
    hard = _Masker(_HARD_BASE, _HARD_PLACEHOLDER_RE)
    masked = hard.mask(text, protect.hard_spans(text))
    if rank >= _LEVEL_RANK["medium"]:
        masked = rules.remove_politeness(masked)
    conditions = _Masker(_CONDITION_BASE, _CONDITION_PLACEHOLDER_RE)
    masked = conditions.mask(masked, protect.condition_spans(masked))
    if rank >= _LEVEL_RANK["medium"]:
        level = "high" if rank >= _LEVEL_RANK["high"] else "medium"
        masked = rules.word_rules(encoding, level).apply(masked)
        if telegraphic:
            masked = rules.apply_telegraphic(masked)
        masked = rules.tidy_after_removals(masked)
    masked = _normalise_whitespace(masked)
    return hard.unmask(conditions.unmask(masked))


def _chunks(text: str) -> list[str]:
    """Split long prose at paragraph (else line, else space) boundaries."""
    if len(text) <= _CHUNK_CHARS:
        return [text]
    chunks = []
    start = 0
    while len(text) - start > _CHUNK_CHARS:
        limit = start + _CHUNK_CHARS
        cut = -1
        for separator in ("\n\n", "\n", " "):
            cut = text.rfind(separator, start + _CHUNK_CHARS // 2, limit)
            if cut != -1:
                cut += len(separator)
                break
        if cut == -1:
            cut = limit
        chunks.append(text[start:cut])
        start = cut
    chunks.append(text[start:])
    return chunks


def rewrite_text(text: str, *, level: str, encoding: str) -> str:
    """The rewritten text, without the never-longer check (see `compress_text`)."""
    rank = _LEVEL_RANK[normalize_level(level)]
    if rank == 0 or not text:
        return text
    telegraphic = rank >= _LEVEL_RANK["medium"] and rules.telegraphic_applies(text)
    parts = []
    position = 0
    for start, end in protect.code_fence_spans(text):
        parts.extend(
            _rewrite_prose(chunk, rank, encoding, telegraphic)
            for chunk in _chunks(text[position:start])
        )
        parts.append(text[start:end])
        position = end
    tail = [
        _rewrite_prose(chunk, rank, encoding, telegraphic) for chunk in _chunks(text[position:])
    ]
    if tail and tail[-1]:
        # Spaces ending the whole text (outside code) carry nothing.
        tail[-1] = tail[-1].rstrip(" \t")
    parts.extend(tail)
    return "".join(parts)


def _encoding_for(model: str | None, encoding: str | None) -> str:
    return encoding or encoding_name_for_model(model or "")


def _shorter_rewrite(text: str, *, level: str, encoding: str) -> tuple[str, int, int] | None:
    """The rewrite of ``text`` with its token counts before and after, or None when it
    changes nothing or does not save a token. Counts tokens only when something changed:
    most texts of a request come through untouched."""
    rewritten = rewrite_text(text, level=level, encoding=encoding)
    if not text[:1].isspace():
        # A removed opening ("Please ...") must not leave the text starting with a space.
        rewritten = rewritten.lstrip()
    if rewritten == text:
        return None
    before = count_tokens(text, encoding=encoding)
    after = count_tokens(rewritten, encoding=encoding)
    return (rewritten, before, after) if after < before else None


# Applications send the same system prompt with every request: its rewrite is kept, keyed by
# the exact text. Other turns rarely repeat and are not kept. Bounded in entries and in size.
_SYSTEM_MEMO_MAX_CHARS = 32_000


@functools.lru_cache(maxsize=256)
def _shorter_rewrite_remembered(
    text: str, level: str, encoding: str
) -> tuple[str, int, int] | None:
    return _shorter_rewrite(text, level=level, encoding=encoding)


def _shorter_rewrite_for(role: str, text: str, *, level: str, encoding: str):
    if role == "system" and len(text) <= _SYSTEM_MEMO_MAX_CHARS:
        return _shorter_rewrite_remembered(text, level, encoding)
    return _shorter_rewrite(text, level=level, encoding=encoding)


def compress_text(
    text: str, *, level: str, model: str | None = None, encoding: str | None = None
) -> CompressionResult:
    """Compress one text for `model` (or an explicit `encoding`). Never returns a text with more
    tokens than the input: if the rewrite does not save tokens, the input comes back."""
    level = normalize_level(level)
    enc = _encoding_for(model, encoding)
    if level != "off" and text:
        shorter = _shorter_rewrite(text, level=level, encoding=enc)
        if shorter is not None:
            rewritten, tokens_before, tokens_after = shorter
            return CompressionResult(rewritten, level, enc, tokens_before, tokens_after)
    tokens_before = count_tokens(text, encoding=enc)
    return CompressionResult(text, level, enc, tokens_before, tokens_before)


def _units(text: str) -> set[str]:
    """Paragraphs and sentences of `text` long enough to count as a verbatim repeat."""
    units = set()
    for paragraph in _PARAGRAPH_SPLIT_RE.split(text):
        paragraph = paragraph.strip()
        if len(paragraph) < _MIN_REPEAT_CHARS:
            continue
        units.add(paragraph)
        for sentence in _SENTENCE_SPLIT_RE.split(paragraph):
            if len(sentence) >= _MIN_REPEAT_CHARS:
                units.add(sentence.strip())
    return units


def _remove_repeats(text: str, seen: set[str]) -> tuple[str, int]:
    """Drop paragraphs and prose sentences of `text` already present verbatim in `seen`."""
    removed = 0
    fences = protect.code_fence_spans(text)
    if fences:
        # Sentence surgery is for prose; a message with code is only deduplicated whole.
        return text, 0
    paragraphs = _PARAGRAPH_SPLIT_RE.split(text)
    kept = []
    for paragraph in paragraphs:
        stripped = paragraph.strip()
        if len(stripped) >= _MIN_REPEAT_CHARS and stripped in seen:
            removed += 1
            continue
        sentences = _SENTENCE_SPLIT_RE.split(paragraph)
        if len(sentences) > 1:
            survivors = []
            for sentence in sentences:
                if len(sentence.strip()) >= _MIN_REPEAT_CHARS and sentence.strip() in seen:
                    removed += 1
                else:
                    survivors.append(sentence)
            paragraph = " ".join(survivors)
        kept.append(paragraph)
    if not removed:
        return text, 0
    result = "".join(kept).strip("\n")
    return (result, removed) if result.strip() else (text, 0)


def _text_parts(content) -> list[tuple[int | None, str]]:
    if isinstance(content, str):
        return [(None, content)]
    if isinstance(content, list):
        return [
            (index, part["text"])
            for index, part in enumerate(content)
            if isinstance(part, dict)
            and part.get("type") in ("text", "input_text")
            and isinstance(part.get("text"), str)
        ]
    return []


def _with_texts(content, texts: dict[int | None, str]):
    if None in texts:
        return texts[None]
    parts = list(content)
    for index, text in texts.items():
        parts[index] = {**parts[index], "text": text}
    return parts


def compress_messages(
    messages: list[dict],
    *,
    level: str,
    model: str | None = None,
    encoding: str | None = None,
    roles: tuple[str, ...] | list[str] = DEFAULT_ROLES,
    tool_results: bool = True,
) -> tuple[list[dict], MessagesCompressionStats]:
    """Compress the text content of messages whose role is in `roles`.

    Other turns (assistant, tool), tool calls and non-text parts are passed through untouched;
    input dicts are never mutated. From `low` upwards, paragraphs and sentences that repeat one
    from an earlier turn verbatim are dropped from the later turn. The returned messages never
    cost more prompt tokens than the input.
    """
    level = normalize_level(level)
    enc = _encoding_for(model, encoding)
    tokens_before = count_message_tokens(messages, encoding=enc)
    if level == "off":
        return list(messages), MessagesCompressionStats(
            level, enc, tokens_before, tokens_before, 0, 0
        )
    roles = tuple(roles)
    seen: set[str] = set()
    result = []
    changed = 0
    repeats = 0
    for message in messages:
        parts = _text_parts(message.get("content"))
        if message.get("role") not in roles or not parts:
            result.append(message)
            for _index, text in parts:
                seen |= _units(text)
            continue
        new_texts = {}
        for index, text in parts:
            deduplicated, removed = _remove_repeats(text, seen) if seen else (text, 0)
            seen |= _units(text)
            repeats += removed
            shorter = _shorter_rewrite_for(
                message.get("role"), deduplicated, level=level, encoding=enc
            )
            compressed = shorter[0] if shorter is not None else deduplicated
            if compressed != text:
                new_texts[index] = compressed
        if new_texts:
            changed += 1
            result.append({**message, "content": _with_texts(message["content"], new_texts)})
        else:
            result.append(message)
    tokens_after = count_message_tokens(result, encoding=enc) if changed else tokens_before
    if tokens_after >= tokens_before:
        return list(messages), MessagesCompressionStats(
            level, enc, tokens_before, tokens_before, 0, 0
        )
    return result, MessagesCompressionStats(
        level, enc, tokens_before, tokens_after, changed, repeats
    )
