"""Agent context: tool results, tool-call arguments and verbatim repeats across messages.

Agent traffic is where most prompt tokens are: pretty-printed JSON from APIs, logs with runs of
the same line, files read twice, a system prompt re-sent inside a later turn. Everything here
is lossless for the model:

- JSON that parses has its whitespace between tokens removed; string literals, numbers and
  key order are kept character for character (the text is never re-serialised, which would
  turn `2.50` into `2.5`);
- a run of identical lines becomes the line once and a note of how many more there were;
- a block that repeats an earlier message of the same request byte for byte becomes a short
  reference to that earlier message. References only ever point backwards, so the form of a
  message never depends on the messages after it (the prompt prefix stays byte-stable for the
  provider's prompt cache).

A tool result that is a file's content (its call names a path) keeps its bytes: an agent that
edits the file copies exact strings from what it read. Only a whole repeat is referenced.
Every transformation is counted on the target tokenizer by the caller and kept only if it
saves tokens.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from proxy.synthlang import protect
from proxy.tokens import count_tokens

# JSON string literals; the text between them is JSON's structure, whose whitespace carries
# nothing.
_JSON_STRING_RE = re.compile(r'("(?:\\.|[^"\\])*")')
_JSON_DECODER = json.JSONDecoder()


def _without_json_whitespace(text: str) -> str:
    """A JSON text without the whitespace between its tokens; string literals untouched."""
    parts = _JSON_STRING_RE.split(text)
    parts[::2] = ["".join(part.split()) for part in parts[::2]]
    return "".join(parts)


# A repeat shorter than this is cheaper to keep than to reference (a reference is ~15 tokens).
MIN_REPEAT_CHARS = 200
_REPEAT_KEY_CHARS = 48
# Runs of identical lines shorter than this are left alone.
MIN_LINE_RUN = 3
_MAX_BLOCK_LINES = 40
# A run of lines repeating earlier lines is referenced from this many lines (and
# MIN_REPEAT_CHARS characters) on, if the reference saves at least _MIN_RUN_SAVING tokens.
MIN_RUN_LINES = 3
_MIN_RUN_SAVING = 10
# Lines this short ("}", "") are too common to anchor a run on; runs may still contain them.
_MIN_ANCHOR_CHARS = 8
_MAX_CANDIDATES = 8
_EXCERPT_CHARS = 40
_MAX_KEY_ARGUMENT_CHARS = 60

# Arguments that say a call reads a file: `path`, `file_path`, `filename`, `paths`...
_FILE_ARGUMENT_RE = re.compile(r"(?i)path|file")


def minify_json_spans(text: str, *, multiline_only: bool = False) -> str:
    """`text` with the whitespace between the tokens of each embedded JSON value removed."""
    if "{" not in text and "[" not in text:
        return text
    spans = protect.json_spans(text)
    if multiline_only:
        spans = [(start, end) for start, end in spans if "\n" in text[start:end]]
    if not spans:
        return text
    parts = []
    position = 0
    for start, end in spans:
        parts.append(text[position:start])
        parts.append(_without_json_whitespace(text[start:end]))
        position = end
    parts.append(text[position:])
    return "".join(parts)


def minify_json_document(text: str) -> str | None:
    """The minified form of `text` when all of it is one JSON value, else None."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        _value, end = _JSON_DECODER.raw_decode(stripped)
    except ValueError:
        return None
    if end != len(stripped):
        return None
    return _without_json_whitespace(stripped)


def _line_run_note(count: int) -> str:
    return f"[the line above repeats {count} more time{'s' if count > 1 else ''}]"


def _block_run_note(lines: int, count: int) -> str:
    return f"[the {lines} lines above repeat {count} more time{'s' if count > 1 else ''}]"


def collapse_repeated_lines(text: str, *, encoding: str) -> str:
    """Runs of identical lines (or of an identical block of lines) kept once, with a count.

    A run is collapsed only where the note costs fewer tokens than the copies it replaces."""
    lines = text.split("\n")
    collapsed = _collapse_lines(lines, encoding)
    return text if collapsed is lines else "\n".join(collapsed)


def _collapse_lines(lines: list[str], encoding: str) -> list[str]:
    if len(lines) < MIN_LINE_RUN or len(set(lines)) == len(lines):
        return lines
    # Where each line occurs next: a block that repeats at once has its period there.
    next_same = [0] * len(lines)
    last_seen: dict[str, int] = {}
    for index in range(len(lines) - 1, -1, -1):
        next_same[index] = last_seen.get(lines[index], -1)
        last_seen[lines[index]] = index
    result = []
    index = 0
    changed = False
    while index < len(lines):
        line = lines[index]
        period = next_same[index] - index if next_same[index] != -1 else 0
        if not line.strip() or not 0 < period <= _MAX_BLOCK_LINES:
            result.append(line)
            index += 1
            continue
        block = lines[index : index + period]
        repeats = 1
        while lines[index + period * repeats : index + period * (repeats + 1)] == block:
            repeats += 1
        copies = repeats - 1
        if (period == 1 and repeats < MIN_LINE_RUN) or copies == 0:
            result.append(line)
            index += 1
            continue
        note = _line_run_note(copies) if period == 1 else _block_run_note(period, copies)
        removed = "\n".join(block * copies)
        if count_tokens(note, encoding=encoding) < count_tokens(removed, encoding=encoding):
            result.extend(block)
            result.append(note)
            changed = True
        else:
            result.extend(block * repeats)
        index += period * repeats
    return result if changed else lines


def is_file_read(call: dict | None) -> bool:
    """Whether a tool call reads a file, judged by its arguments naming a path or file."""
    if not call:
        return False
    arguments = call.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return bool(_FILE_ARGUMENT_RE.search(arguments))
    if isinstance(arguments, dict):
        return any(
            _FILE_ARGUMENT_RE.search(str(key)) and isinstance(value, str | list)
            for key, value in arguments.items()
        )
    return False


def compress_tool_text(
    text: str,
    *,
    file_read: bool,
    encoding: str,
    history: History | None = None,
) -> str:
    """A tool result's text made shorter without losing anything (files keep their bytes):
    JSON minified; runs of lines that repeat earlier lines of this result or of an earlier
    message (in `history`) replaced by a reference; runs of identical lines counted."""
    if file_read:
        return text
    document = minify_json_document(text)
    if document is not None:
        return document
    original = text.split("\n")
    # Runs of the same line first (the count says it best), then what repeats earlier lines.
    lines = _collapse_lines(original, encoding)
    if history is not None:
        lines = history.replace_runs(lines, encoding=encoding)
    if lines is original:
        return minify_json_spans(text, multiline_only=True)
    return minify_json_spans("\n".join(lines), multiline_only=True)


def compress_arguments(arguments: str) -> str:
    """Tool-call arguments with the whitespace of their JSON removed (values untouched)."""
    minified = minify_json_document(arguments)
    return minified if minified is not None else arguments


# --- Verbatim repeats across messages ---------------------------------------------------


@dataclass(frozen=True)
class Source:
    """How a later message names an earlier one: a short description (`read_file("src/a.py")`,
    "the system message"), and an exact one (with the tool call's id: `read_file call
    call_7`) for when two earlier messages share the short description."""

    short: str
    exact: str


def _key_argument(arguments) -> str:
    """The first short string argument of a call (a path, a query, a URL), to name it by."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return ""
    if isinstance(arguments, dict):
        for value in arguments.values():
            if isinstance(value, str) and 0 < len(value) <= _MAX_KEY_ARGUMENT_CHARS:
                return value.replace('"', "'")
    return ""


def source_for(message: dict, *, calls: dict[str, dict]) -> Source:
    role = message.get("role")
    call_id = message.get("tool_call_id")
    if role in ("tool", "function") or call_id:
        call = calls.get(str(call_id)) or {}
        name = call.get("name") or message.get("name") or "tool"
        key = _key_argument(call.get("arguments"))
        # Written like the call itself: short, and read the same way by any model.
        short = f'{name}("{key}")' if key else f"{name}()"
        exact = f"{name} call {call_id}" if call_id else short
        return Source(short, exact)
    name = f"the {role or 'earlier'} message"
    first = next(
        (line for text in _message_texts(message) for line in text.split("\n") if line.strip()),
        "",
    )
    return Source(name, f'{name} that starts "{_excerpt(first)}"' if first else name)


def _message_texts(message: dict) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
    return []


def tool_part_source(call_id: str, *, calls: dict[str, dict]) -> Source:
    """The source of a tool result carried in a content part (Anthropic's `tool_result`)."""
    return source_for({"role": "tool", "tool_call_id": call_id}, calls=calls)


def _excerpt(line: str) -> str:
    line = line.strip().replace('"', "'")
    return line if len(line) <= _EXCERPT_CHARS else line[:_EXCERPT_CHARS].rstrip() + "…"


def _run_length(lines: list[str], start: int, earlier: list[str], number: int, limit: int) -> int:
    length = 0
    while (
        start + length < len(lines)
        and number + length < limit
        and lines[start + length] == earlier[number + length]
    ):
        length += 1
    return length


@dataclass
class History:
    """The earlier messages of a request: their tool calls, their texts (to reference a
    later verbatim repeat of a whole text) and their lines (to reference a run of lines a
    later tool result repeats). Only ever holds what came before the message at hand."""

    calls: dict[str, dict] = field(default_factory=dict)
    # First characters of each earlier text -> (text, source) for every earlier text sharing
    # them; the first occurrence of a text is the one referenced.
    _by_key: dict[str, list[tuple[str, Source]]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _short_names: dict[str, int] = field(default_factory=dict)
    _sources: list[tuple[list[str], Source]] = field(default_factory=list)
    _where: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def add_calls(self, message: dict) -> None:
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and call.get("id"):
                self.calls[str(call["id"])] = function
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "tool_use" and part.get("id"):
                    self.calls[str(part["id"])] = {
                        "name": part.get("name"),
                        "arguments": part.get("input"),
                    }

    def add(self, text: str, source: Source, *, lines: bool) -> None:
        """Remember one earlier text; with `lines`, also its lines for runs of lines."""
        needle = text.strip()
        if len(needle) < MIN_REPEAT_CHARS:
            return
        self._short_names[source.short] = self._short_names.get(source.short, 0) + 1
        if needle not in self._seen:
            self._seen.add(needle)
            self._by_key.setdefault(needle[:_REPEAT_KEY_CHARS], []).append((needle, source))
        if lines and "\n" in text:
            split = text.split("\n")
            index = len(self._sources)
            self._sources.append((split, source))
            for number, line in enumerate(split):
                if len(line.strip()) >= _MIN_ANCHOR_CHARS:
                    self._where.setdefault(line, []).append((index, number))

    def name(self, source: Source) -> str:
        """The short name when no other earlier message has it, else the exact one."""
        return source.short if self._short_names.get(source.short, 0) <= 1 else source.exact

    def whole_reference(self, source: Source) -> str:
        return f"[same as {self.name(source)} above]"

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Spans of `text` that repeat a whole earlier text, each starting and ending at a
        line boundary, with the reference that replaces it."""
        if not self._by_key or len(text) < MIN_REPEAT_CHARS:
            return []
        found = []
        position = 0
        length = len(text)
        while position < length:
            line_end = text.find("\n", position)
            if line_end == -1:
                line_end = length
            start = position
            while start < line_end and text[start] in " \t":
                start += 1
            match = self._match_at(text, start)
            if match is not None:
                needle, source = match
                end = start + len(needle)
                found.append((start, end, self.whole_reference(source)))
                next_break = text.find("\n", end)
                position = length if next_break == -1 else next_break + 1
            else:
                position = line_end + 1
        return found

    def _match_at(self, text: str, start: int) -> tuple[str, Source] | None:
        candidates = self._by_key.get(text[start : start + _REPEAT_KEY_CHARS])
        if not candidates:
            return None
        for needle, source in candidates:
            end = start + len(needle)
            if text.startswith(needle, start) and (end == len(text) or text[end] in "\n\r \t"):
                return needle, source
        return None

    def _longest(self, lines: list[str], index: int, local: dict[str, list[int]]):
        """The longest run starting at `index` that repeats earlier lines: (length, where)."""
        line = lines[index]
        best, where = 0, ""
        for source_index, number in self._where.get(line, ())[-_MAX_CANDIDATES:]:
            earlier, source = self._sources[source_index]
            length = _run_length(lines, index, earlier, number, len(earlier))
            if length > best:
                best, where = length, f"{self.name(source)} above"
        for number in local.get(line, ())[-_MAX_CANDIDATES:]:
            # Within the same text, the copy must end before the repeat starts.
            length = _run_length(lines, index, lines, number, index)
            if length > best:
                best, where = length, "above"
        return best, where

    def replace_runs(self, lines: list[str], *, encoding: str) -> list[str]:
        """`lines` with each run of at least MIN_RUN_LINES lines (MIN_REPEAT_CHARS characters)
        that repeats earlier lines (of an earlier text, or above in these lines) replaced by a
        reference to where they are."""
        if len(lines) < MIN_RUN_LINES:
            return lines
        result = []
        local: dict[str, list[int]] = {}
        index = 0
        changed = False
        while index < len(lines):
            line = lines[index]
            length = 0
            if len(line.strip()) >= _MIN_ANCHOR_CHARS:
                length, where = self._longest(lines, index, local)
            if length >= MIN_RUN_LINES:
                run = "\n".join(lines[index : index + length])
                note = f'[{length} lines repeated from {where}, from "{_excerpt(line)}"]'
                if len(run) >= MIN_REPEAT_CHARS and count_tokens(
                    note, encoding=encoding
                ) + _MIN_RUN_SAVING < count_tokens(run, encoding=encoding):
                    result.append(note)
                    for offset in range(length):
                        local.setdefault(lines[index + offset], []).append(index + offset)
                    index += length
                    changed = True
                    continue
            result.append(line)
            local.setdefault(line, []).append(index)
            index += 1
        return result if changed else lines


def replace_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    parts = []
    position = 0
    for start, end, replacement in spans:
        parts.append(text[position:start])
        parts.append(replacement)
        position = end
    parts.append(text[position:])
    return "".join(parts)
