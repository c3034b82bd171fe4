"""Which parts of a prompt are instruction prose, and which are material to be worked on.

Compression may only rewrite words in *instruction prose*: what a system prompt or a user tells
the model to do. Everything the user supplies for the model to work on (a draft to edit, a
document, a passage, a table, a citation, a transcript, data, code) is *material* and goes
upstream byte for byte, because changing it changes the task: a proofread of an edited draft
is a proofread of the wrong text.

Nothing here knows the words of any prompt set. The signals are general shapes of text:

- *markers of material*: code fences, quotations (also across lines), indented lines, block
  quotes, table rows, columns aligned with runs of spaces or tabs, data lines (CSV, key: value,
  worked examples), labelled lines ("Subject: ..."), bibliography lines (initials, a year in
  brackets), embedded JSON;
- *introductions of material*: a line ending in a colon, a colon inside a line, a forward
  reference ("below", "the following", "here is");
- *the shape of a user turn*: its first paragraph is the request; whatever follows (another
  paragraph, a pasted block) may be material and is treated as such;
- *a system prompt that says the user's messages are the material* ("translate the user's
  message", "you will receive a passage"): then no user turn is rewritten at all.

When unsure, text is material: a rule that leaves text alone cannot damage it.
"""

from __future__ import annotations

import re

from proxy.synthlang import protect

INSTRUCTION = "instruction"
MATERIAL = "material"
# JSON in a system prompt (a tool list, a schema): material whose whitespace between tokens
# carries nothing, so it may be minified; its values never change.
JSON = "json"

# Quotations that run across lines: a quoted draft, a quoted e-mail. (Quotes inside one line
# are protected span by span within instruction prose; see protect.hard_spans.)
_MULTILINE_QUOTE_RE = re.compile(
    r'(?<![\w"])"[^"\n]*\n[^"]{0,20000}?"(?![\w"])'
    r"|“[^”\n]*\n[^”]{0,20000}”|„[^“”\n]*\n[^“”]{0,20000}[“”]|«[^»\n]*\n[^»]{0,20000}»"
    r"|「[^」\n]*\n[^」]{0,20000}」|『[^』\n]*\n[^』]{0,20000}』"
)
_LIST_ITEM_RE = re.compile(r"[ \t]*(?:[-*•+]|\d{1,3}[.)]|[A-Za-z][.)])[ \t]+\S")
# A run of two or more spaces, or a tab, between two visible characters: aligned columns, a
# poem's spacing, a padded table. The layout is part of the text.
_ALIGNMENT_RE = re.compile(r"\S(?: {2,}|\t)\S")
# "Subject: ...", "Speaker 2: ...", "Rules: ...": a short label opening a line. What follows a
# label is often data or a transcript line; it is left as written.
_LABEL_LINE_RE = re.compile(r"[ \t]*(?:[-*•][ \t]+)?[^\s:][^:\n]{0,40}?:(?:[ \t]+\S|[ \t]*$)")
_LABEL_MAX_WORDS = 4
# Bibliography shapes: "Surname, A." with initials, or a year (or n.d.) in brackets.
_CITATION_RE = re.compile(
    r"\b[A-Z][\w'’-]+,[ \t]+(?:[A-Z]\.[ \t-]?){1,3}(?=[ \t]*(?:,|&|and\b|\(|\d))"
    r"|\((?:1[5-9]\d\d|20\d\d)[a-z]?\)|\(n\.d\.\)"
)
# A colon that introduces something inside a line: followed by a space and more text, and not
# a time ("10:30") or a scheme ("https:").
_INLINE_COLON_RE = re.compile(r":[ \t]+(?=\S)")
# Words that point at material further on in the message.
_FORWARD_REFERENCE_RE = re.compile(
    r"(?i)\b(?:below|the following|as follows|attached|here (?:is|are)|here['’]s)\b"
)
_PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t]*\n")

# System prompts of applications whose user turns are the input to transform (translators,
# proofreaders, summarisers, classifiers): the user's text is material, every word of it.
_USER_TEXT_NOUNS = (
    r"(?:message|text|input|content|e-?mail|passage|document|draft|essay|paragraph|article|"
    r"transcript|review|sentence|post|letter|copy|code|snippet|query)s?"
)
_RECEIVES = (
    r"you[ \t]+(?:will[ \t]+|'ll[ \t]+|’ll[ \t]+)?(?:receive|get|be[ \t]+given|are[ \t]+given|"
    r"be[ \t]+sent|are[ \t]+sent|be[ \t]+shown|are[ \t]+shown)"
)
_USER_MATERIAL_RE = re.compile(
    r"(?i)\b(?:the[ \t]+)?user['’]?s?['’]?[ \t]+(?:\w+[ \t]+)?" + _USER_TEXT_NOUNS + r"\b"
    r"|\b"
    + _RECEIVES
    + r"[ \t]+(?:(?:a|an|the|some|one|each)[ \t]+)?(?:\w+[ \t]+)?"
    + _USER_TEXT_NOUNS
    + r"\b"
    r"|\b(?:each|every|any|the|all)[ \t]+(?:incoming|given|provided|submitted|supplied|pasted)"
    r"[ \t]+" + _USER_TEXT_NOUNS + r"\b"
)


def declares_user_material(system_text: str) -> bool:
    """True when a system prompt says the user's messages are the text to work on."""
    return bool(_USER_MATERIAL_RE.search(system_text))


def _is_material_line(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if line[0] in " \t" or stripped[0] == ">":
        # Indented lines (code, nested data, a poem) and block quotes.
        return True
    if stripped.count("|") >= 2 or _ALIGNMENT_RE.search(stripped):
        return True
    if protect.is_payload_line(line) or _CITATION_RE.search(line):
        return True
    label = _LABEL_LINE_RE.match(line)
    if label:
        key = line[: label.end()].split(":", 1)[0]
        if len(key.split()) <= _LABEL_MAX_WORDS and "://" not in line[: label.end() + 3]:
            return True
    return False


def _is_introducer(line: str) -> bool:
    return line.rstrip().endswith(":")


def _lines(text: str, start: int, end: int):
    """(line_start, line_end) of each line in text[start:end], line breaks excluded."""
    position = start
    while position < end:
        newline = text.find("\n", position, end)
        line_end = end if newline == -1 else newline
        yield position, line_end
        position = line_end + 1


def _quoted_or_fenced(text: str) -> list[tuple[int, int]]:
    spans = protect.code_fence_spans(text)
    if '"' in text or not text.isascii():
        spans += [match.span() for match in _MULTILINE_QUOTE_RE.finditer(text)]
    return protect.merge_spans(spans)


def _json_blocks(text: str, excluded: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """JSON values written over several lines, outside code fences and quotations."""
    blocks = []
    for start, end in protect.json_spans(text):
        if "\n" not in text[start:end]:
            continue
        if any(start < stop and begin < end for begin, stop in excluded):
            continue
        blocks.append((start, end))
    return blocks


def _next_content_line(text: str, position: int) -> str:
    """The first non-blank line at or after `position`."""
    for start, end in _lines(text, position, len(text)):
        if text[start:end].strip():
            return text[start:end]
    return ""


def _system_material(text: str, fixed: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Material inside a system prompt: the fixed spans, material lines, the rest of a line
    after an inline colon, and everything after an introduction that is not a list of rules."""
    spans = list(fixed)
    for start, end in _lines(text, 0, len(text)):
        line = text[start:end]
        if _is_introducer(line) or _FORWARD_REFERENCE_RE.search(line):
            following = _next_content_line(text, end + 1)
            # "Rules:" followed by a list keeps the list as instructions; "Context:" or "the
            # article below" followed by anything else introduces material to the end.
            if following and not _LIST_ITEM_RE.match(following):
                if _is_introducer(line):
                    spans.append((end, len(text)))
                    break
                paragraph_end = _PARAGRAPH_BREAK_RE.search(text, end)
                if paragraph_end:
                    spans.append((paragraph_end.end(), len(text)))
                    break
        if _is_material_line(line):
            spans.append((start, end))
            continue
        colon = _INLINE_COLON_RE.search(text, start, end)
        if colon and colon.start() < end - 1:
            spans.append((colon.end(), end))
    return protect.merge_spans(spans)


def _user_instruction_end(text: str, fixed: list[tuple[int, int]]) -> int:
    """Where the request of a user turn ends: at the first paragraph break, the first
    material line, the end of an introducing line, or an inline colon (whichever is first)."""
    limit = len(text)
    paragraph_end = _PARAGRAPH_BREAK_RE.search(text)
    if paragraph_end:
        limit = paragraph_end.start()
    if fixed:
        limit = min(limit, fixed[0][0])
    for start, end in _lines(text, 0, limit):
        line = text[start:end]
        if _is_material_line(line):
            return start
        colon = _INLINE_COLON_RE.search(text, start, min(end, limit))
        if colon:
            return colon.end()
        if _is_introducer(line):
            return min(end, limit)
        if _FORWARD_REFERENCE_RE.search(line):
            # The sentence pointing at the material is the request; the rest is material.
            return min(end, limit)
    return limit


def segments(text: str, *, role: str, user_material: bool = False) -> list[tuple[int, int, str]]:
    """The text cut into (start, end, kind) pieces that cover it in order; kind is
    INSTRUCTION, MATERIAL or (in system prompts) JSON."""
    if not text:
        return []
    if role != "system" and user_material:
        return [(0, len(text), MATERIAL)]
    quoted = _quoted_or_fenced(text)
    json_blocks = _json_blocks(text, quoted)
    fixed = protect.merge_spans(quoted + json_blocks)
    if role == "system":
        material = _system_material(text, fixed)
    else:
        json_blocks = []
        end = _user_instruction_end(text, fixed)
        material = [(end, len(text))] if end < len(text) else []
    result = []
    position = 0
    for start, end in material:
        # Blank lines before a block separate it from the request; they are not part of it.
        start = _after_blank_lines(text, start, end)
        if start > position:
            result.append((position, start, INSTRUCTION))
        if end > start:
            result.append((max(start, position), end, MATERIAL))
        position = max(position, end)
    if position < len(text):
        result.append((position, len(text), INSTRUCTION))
    return _carve(result, json_blocks) if json_blocks else result


def _after_blank_lines(text: str, start: int, end: int) -> int:
    """`start` moved past the blank lines (only whitespace up to a line break) it opens on."""
    position = start
    while position < end:
        newline = text.find("\n", position, end)
        if newline == -1 or text[position:newline].strip():
            break
        position = newline + 1
    return position


def _carve(pieces: list[tuple[int, int, str]], blocks: list[tuple[int, int]]):
    """`pieces` with each of `blocks` cut out of them as a JSON piece."""
    result = []
    for start, end, kind in pieces:
        position = start
        for block_start, block_end in blocks:
            if block_end <= position or block_start >= end:
                continue
            if block_start > position:
                result.append((position, block_start, kind))
            result.append((max(block_start, position), min(block_end, end), JSON))
            position = min(block_end, end)
        if position < end:
            result.append((position, end, kind))
    return result


def material_spans(text: str, *, role: str, user_material: bool = False) -> list[tuple[int, int]]:
    """The material pieces of `text` (for checks and tests)."""
    return [
        (start, end)
        for start, end, kind in segments(text, role=role, user_material=user_material)
        if kind == MATERIAL
    ]
