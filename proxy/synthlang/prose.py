"""Rewriting one text: instruction pieces reworded at the level asked, material left alone.

`rewrite` cuts the text into instruction and material (`segment.segments`), replaces the spans
that repeat an earlier message by their reference, and rewrites each instruction piece: spaces
ending a line and runs of blank lines at every level; with `words` (medium and up), sentence by
sentence, politeness formulas, then (with the negation and condition clauses masked) fillers and
verbose phrases; with `high`, also telegraphic style and symbols. Hard-protected spans (code,
URLs, numbers, quotes, names...) are masked before any rule runs.
"""

from __future__ import annotations

import re

from proxy.synthlang import agent, protect, rules, segment, telegraphic

# Placeholders: plane 15 for hard spans, plane 16 for condition sentences (which may contain
# hard placeholders). Each plane has 65,534 usable code points, so prose is processed in chunks
# small enough never to run out.
_HARD_BASE = 0xF0000
_CONDITION_BASE = 0x100000
_CHUNK_CHARS = 60_000
_HARD_PLACEHOLDER_RE = re.compile("[\U000f0000-\U000ffffd]")
_CONDITION_PLACEHOLDER_RE = re.compile("[\U00100000-\U0010fffd]")
# Sentences and lines, with what separates them.
_SENTENCE_SPLIT_RE = re.compile(r"((?<=[.!?])[ \t]+|\n)")
_SPACE_RUN_RE = re.compile(r"(?<=\S)  +(?=\S)")
# Something worth keeping: a letter, a digit or a protected span.
_CONTENT_RE = re.compile(r"[^\W_]|[\U000f0000-\U0010fffd]")


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


def _has_content(text: str) -> bool:
    return _CONTENT_RE.search(text) is not None


def _normalise_whitespace(text: str) -> str:
    """Spaces ending a line and runs of blank lines; indentation and inner spaces stay."""
    text = rules.TRAILING_SPACE_RE.sub("", text)
    if "\n\n\n" in text or "\n \n" in text or "\n\t\n" in text:
        text = rules.BLANK_LINES_RE.sub("\n\n", text)
    return text


def _rewrite_sentence(sentence: str, *, high: bool, encoding: str, terse: bool) -> str:
    """Word rules on one masked sentence (or line). Below `high` words are only removed or
    replaced: the words kept keep their case, so a phrase the user wrote is still there."""
    sentence = rules.remove_politeness(sentence, recapitalise=high)
    if not high:
        # Before the condition clauses are masked, which could hide a mark inside them.
        sentence = rules.tidy_removals(sentence)
    conditions = _Masker(_CONDITION_BASE, _CONDITION_PLACEHOLDER_RE)
    masked = conditions.mask(sentence, protect.condition_spans(sentence))
    masked = rules.word_rules(encoding, "high" if high else "medium").apply(
        masked, recapitalise=high
    )
    if terse:
        masked = telegraphic.apply_telegraphic(masked)
    # Below high only the places of removals are tidied; high tidies the whole sentence.
    masked = rules.tidy_after_removals(masked) if high else rules.tidy_removals(masked)
    if "  " in masked and "  " not in sentence:
        # Removals leave two spaces where a word was; instruction prose had none.
        masked = _SPACE_RUN_RE.sub(" ", masked)
    return conditions.unmask(masked)


def _rewrite_words(text: str, *, high: bool, encoding: str, terse: bool) -> str:
    hard = _Masker(_HARD_BASE, _HARD_PLACEHOLDER_RE)
    masked = hard.mask(text, protect.hard_spans(text))
    parts = _SENTENCE_SPLIT_RE.split(masked)
    for index in range(0, len(parts), 2):
        sentence = parts[index]
        if not sentence.strip():
            continue
        rewritten = _rewrite_sentence(sentence, high=high, encoding=encoding, terse=terse)
        # Below `high` a sentence is reworded, never removed.
        if not high and not _has_content(rewritten):
            continue
        parts[index] = rewritten
    return hard.unmask("".join(parts))


def _rewrite_instruction(text: str, options: dict) -> str:
    text = _normalise_whitespace(text)
    if not options["words"]:
        return text
    words = {key: options[key] for key in ("high", "encoding", "terse")}
    if len(text) <= _CHUNK_CHARS:
        return _rewrite_words(text, **words)
    return "".join(_rewrite_words(chunk, **words) for chunk in _chunks(text))


def _chunks(text: str) -> list[str]:
    """Split long prose at paragraph (else line, else space) boundaries."""
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


def rewrite(
    text: str,
    *,
    words: bool,
    high: bool,
    encoding: str,
    role: str,
    user_material: bool,
    repeats: list[tuple[int, int, str]],
) -> str:
    """`text` rewritten; `words` for the word rules (medium and up), `high` for `high`'s."""
    options = {
        "words": words,
        "high": high,
        "encoding": encoding,
        "terse": high and telegraphic.telegraphic_applies(text),
    }
    pieces = segment.segments(text, role=role, user_material=user_material)
    parts = []
    pending = 0  # index of the first repeat not yet passed
    for start, end, kind in pieces:
        position = start
        # A repeat replaces whatever it covers (its reference is written once, where it
        # starts); the text around it is handled as its piece says.
        while position < end:
            while pending < len(repeats) and repeats[pending][1] <= position:
                pending += 1
            if pending < len(repeats) and repeats[pending][0] < end:
                repeat_start, repeat_end, reference = repeats[pending]
                if repeat_start > position:
                    parts.append(_piece(text[position:repeat_start], kind, options))
                    position = repeat_start
                if position == repeat_start:
                    parts.append(reference)
                position = min(repeat_end, end)
            else:
                parts.append(_piece(text[position:end], kind, options))
                position = end
    result = "".join(parts)
    if pieces and pieces[-1][2] == segment.INSTRUCTION:
        # Spaces ending the whole text carry nothing.
        result = result.rstrip(" \t")
    if not text[:1].isspace():
        # A removed opening ("Please ...") must not leave the text starting with a space.
        result = result.lstrip(" \t")
    if _has_content(text) and not _has_content(result):
        return text
    return result


def _piece(text: str, kind: str, options: dict) -> str:
    if kind == segment.INSTRUCTION:
        return _rewrite_instruction(text, options)
    if kind == segment.JSON:
        return agent.minify_json_spans(text)
    return text
