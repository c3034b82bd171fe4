"""SynthLang compression: `compress_text` and `compress_messages`.

What each level may do (every level keeps everything the lower ones keep):

- `low`, the platform default, is lossless for the model and safe on any text: whitespace that
  carries nothing in instruction prose (spaces ending a line, runs of blank lines), JSON in
  system prompts and tool results minified (whitespace between tokens only), runs of identical
  lines in tool output counted instead of repeated, and a block that repeats an earlier message
  of the request verbatim replaced by a reference to it.
- `medium` also rewrites words in instruction prose, where the result is the same instruction:
  request framing ("I was wondering if you could"), discourse fillers ("basically"), verbose
  phrases ("in order to"). It never removes a sentence: a sentence the rules would empty (a
  greeting, a thank-you) stays as written.
- `high` (opt-in) also removes courtesy sentences, intensifiers and hedges, drops articles and
  instruction scaffolding (telegraphic style) and uses SynthLang symbols: shorter, and no
  longer worded exactly as the user wrote it.

No level changes material the user supplies (see `segment.py`), a short message (under
`SHORT_MESSAGE_CHARS`), or an assistant turn unless the organization asks for it, and no level
empties a message. Each message's form depends only on the messages before it, so the prompt
prefix of a conversation is byte-stable from one call to the next. Every change is counted on
the target model's tokenizer and kept only if the message gets shorter.

Where the work is done: `segment.py` tells instruction from material, `prose.py` rewrites one
text, `agent.py` compresses tool results and tracks what earlier messages said, `rules.py`,
`telegraphic.py` and `phrases.py` hold the word rules.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from proxy.synthlang import agent, prose, segment
from proxy.tokens import (
    TOKENS_PER_REPLY_PRIMER,
    count_message_tokens,
    count_tokens,
    encoding_name_for_model,
)

LEVELS = ("off", "low", "medium", "high")
_LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
_MEDIUM = _LEVEL_RANK["medium"]
_HIGH = _LEVEL_RANK["high"]
DEFAULT_ROLES = ("system", "user")
# Roles whose content is the output of a tool: never prose, handled by `agent` only.
TOOL_ROLES = ("tool", "function")

# A message shorter than this goes upstream as written, at every level: it has no scaffolding
# to lose, and "Hello!" must stay "Hello!".
SHORT_MESSAGE_CHARS = 300


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


def rewrite_text(
    text: str,
    *,
    level: str,
    encoding: str,
    role: str = "user",
    user_material: bool = False,
    repeats: list[tuple[int, int, str]] = (),
) -> str:
    """The rewritten text, without the never-longer check (see `compress_text`).

    `role` decides how the text is cut into instruction and material (`segment.segments`);
    `repeats` are (start, end, reference) spans that repeat an earlier message."""
    rank = _LEVEL_RANK[normalize_level(level)]
    if rank == 0 or len(text) < SHORT_MESSAGE_CHARS:
        return text
    return prose.rewrite(
        text,
        words=rank >= _MEDIUM,
        high=rank >= _HIGH,
        encoding=encoding,
        role=role,
        user_material=user_material,
        repeats=list(repeats),
    )


def _encoding_for(model: str | None, encoding: str | None) -> str:
    return encoding or encoding_name_for_model(model or "")


def compress_text(
    text: str, *, level: str, model: str | None = None, encoding: str | None = None
) -> CompressionResult:
    """Compress one text for `model` (or an explicit `encoding`), as a user turn. Never
    returns a text with more tokens than the input: if the rewrite does not save tokens, the
    input comes back."""
    level = normalize_level(level)
    enc = _encoding_for(model, encoding)
    tokens_before = count_tokens(text, encoding=enc)
    if level != "off" and text:
        rewritten = rewrite_text(text, level=level, encoding=enc)
        if rewritten != text:
            tokens_after = count_tokens(rewritten, encoding=enc)
            if tokens_after < tokens_before:
                return CompressionResult(rewritten, level, enc, tokens_before, tokens_after)
    return CompressionResult(text, level, enc, tokens_before, tokens_before)


# Applications send the same system prompt with every request: its rewrite is kept, keyed by
# the exact text. Other turns rarely repeat and are not kept. Bounded in entries and in size.
_SYSTEM_MEMO_MAX_CHARS = 32_000


@functools.lru_cache(maxsize=256)
def _system_rewrite(text: str, level: str, encoding: str) -> str:
    return rewrite_text(text, level=level, encoding=encoding, role="system")


# --- Messages ---------------------------------------------------------------------------


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


def _is_short(message) -> bool:
    """Whether nothing in `message` is long enough for any rule to change."""
    if not isinstance(message, dict):
        return True
    for _index, text in _text_parts(message.get("content")):
        if len(text) >= SHORT_MESSAGE_CHARS:
            return False
    content = message.get("content")
    if isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "tool_result" for part in content
    ):
        return False
    return not message.get("tool_calls")


def _message_tokens(message: dict, encoding: str) -> int:
    """A message's share of the prompt, as `count_message_tokens` counts it."""
    return count_message_tokens([message], encoding=encoding) - TOKENS_PER_REPLY_PRIMER


class _Conversation:
    """State carried from message to message: only ever what came before."""

    def __init__(self, *, rank: int, level: str, encoding: str, roles, tool_results: bool):
        self.rank = rank
        self.level = level
        self.encoding = encoding
        self.roles = tuple(role for role in roles if role not in TOOL_ROLES)
        self.tool_results = tool_results
        self.history = agent.History()
        self.user_material = False
        self.repeats = 0

    def compress(self, message: dict) -> dict:
        role = message.get("role")
        content = message.get("content")
        new = message
        if role in TOOL_ROLES:
            if self.tool_results:
                new = self._tool_message(message)
        else:
            texts = {}
            if role in self.roles:
                for index, text in _text_parts(content):
                    rewritten = self._prose(text, role)
                    if rewritten != text:
                        texts[index] = rewritten
            if texts:
                new = {**message, "content": _with_texts(content, texts)}
            if self.tool_results:
                new = self._tool_parts(new)
                new = self._tool_call_arguments(new)
        return new

    def remember(self, message: dict) -> None:
        """Record `message` (as the client sent it) for the messages after it."""
        self.history.add_calls(message)
        role = message.get("role")
        source = agent.source_for(message, calls=self.history.calls)
        content = message.get("content")
        for _index, text in _text_parts(content):
            self.history.add(text, source, lines=self.tool_results)
            if role == "system" and not self.user_material:
                self.user_material = segment.declares_user_material(text)
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "tool_result":
                    source = agent.tool_part_source(
                        str(part.get("tool_use_id")), calls=self.history.calls
                    )
                    for text in _tool_part_texts(part):
                        self.history.add(text, source, lines=self.tool_results)

    def _prose(self, text: str, role: str) -> str:
        if len(text) < SHORT_MESSAGE_CHARS:
            return text
        repeats = self.history.find(text)
        self.repeats += len(repeats)
        if role == "system" and not repeats and len(text) <= _SYSTEM_MEMO_MAX_CHARS:
            return _system_rewrite(text, self.level, self.encoding)
        return rewrite_text(
            text,
            level=self.level,
            encoding=self.encoding,
            role=role,
            user_material=self.user_material,
            repeats=repeats,
        )

    def _tool_text(self, text: str, call_id) -> str:
        if len(text) < SHORT_MESSAGE_CHARS:
            return text
        repeats = self.history.find(text)
        if repeats and repeats[0][0] == 0 and repeats[0][1] >= len(text.rstrip()):
            # The whole result repeats an earlier one: a reference is all the model needs.
            self.repeats += 1
            return repeats[0][2]
        call = self.history.calls.get(str(call_id)) if call_id is not None else None
        compressed = agent.compress_tool_text(
            text, file_read=agent.is_file_read(call), encoding=self.encoding, history=self.history
        )
        if repeats and compressed == text:
            self.repeats += len(repeats)
            return agent.replace_spans(text, repeats)
        return compressed

    def _tool_message(self, message: dict) -> dict:
        content = message.get("content")
        call_id = message.get("tool_call_id")
        texts = {}
        for index, text in _text_parts(content):
            rewritten = self._tool_text(text, call_id)
            if rewritten != text:
                texts[index] = rewritten
        return {**message, "content": _with_texts(content, texts)} if texts else message

    def _tool_parts(self, message: dict) -> dict:
        """Tool results carried inside content parts (Anthropic's `tool_result`)."""
        content = message.get("content")
        if not isinstance(content, list):
            return message
        parts = None
        for index, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "tool_result"):
                continue
            new_part = _compress_tool_part(part, self)
            if new_part is not part:
                parts = parts or list(content)
                parts[index] = new_part
        return {**message, "content": parts} if parts is not None else message

    def _tool_call_arguments(self, message: dict) -> dict:
        calls = message.get("tool_calls")
        if not isinstance(calls, list):
            return message
        new_calls = None
        for index, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            # Arguments are machine JSON: minifying them is lossless at any length.
            if not isinstance(arguments, str):
                continue
            minified = agent.compress_arguments(arguments)
            if minified != arguments:
                new_calls = new_calls or list(calls)
                new_calls[index] = {**call, "function": {**function, "arguments": minified}}
        return {**message, "tool_calls": new_calls} if new_calls is not None else message


def _tool_part_texts(part: dict) -> list[str]:
    inner = part.get("content")
    if isinstance(inner, str):
        return [inner]
    if isinstance(inner, list):
        return [
            block["text"]
            for block in inner
            if isinstance(block, dict) and isinstance(block.get("text"), str)
        ]
    return []


def _compress_tool_part(part: dict, conversation: _Conversation) -> dict:
    call_id = part.get("tool_use_id")
    inner = part.get("content")
    if isinstance(inner, str):
        rewritten = conversation._tool_text(inner, call_id)
        return {**part, "content": rewritten} if rewritten != inner else part
    if isinstance(inner, list):
        blocks = None
        for index, block in enumerate(inner):
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                rewritten = conversation._tool_text(block["text"], call_id)
                if rewritten != block["text"]:
                    blocks = blocks or list(inner)
                    blocks[index] = {**block, "text": rewritten}
        if blocks is not None:
            return {**part, "content": blocks}
    return part


def compress_messages(
    messages: list[dict],
    *,
    level: str,
    model: str | None = None,
    encoding: str | None = None,
    roles: tuple[str, ...] | list[str] = DEFAULT_ROLES,
    tool_results: bool = True,
) -> tuple[list[dict], MessagesCompressionStats]:
    """Compress a chat request's messages.

    The prose of messages whose role is in `roles` is compressed at `level`; with
    `tool_results`, tool results (role `tool`, and `tool_result` content parts) and assistant
    tool-call arguments get the lossless agent transformations at every level. Assistant prose
    (unless in `roles`), images and other parts pass through untouched; input dicts are never
    mutated. A message is replaced only if its new form costs fewer tokens, and its new form
    depends on the messages before it only.
    """
    level = normalize_level(level)
    enc = _encoding_for(model, encoding)
    if level == "off" or all(_is_short(message) for message in messages):
        # A request of short messages goes upstream exactly as sent.
        tokens = count_message_tokens(messages, encoding=enc)
        return list(messages), MessagesCompressionStats(level, enc, tokens, tokens, 0, 0)
    conversation = _Conversation(
        rank=_LEVEL_RANK[level], level=level, encoding=enc, roles=roles, tool_results=tool_results
    )
    result = []
    changed = 0
    saved = 0
    # Each message is counted once (as `count_message_tokens` counts it), and a changed one
    # once more in its new form.
    tokens_before = TOKENS_PER_REPLY_PRIMER
    for message in messages:
        before = _message_tokens(message, enc)
        tokens_before += before
        new = message
        if isinstance(message, dict) and not _is_short(message):
            new = conversation.compress(message)
            if new is not message:
                after = _message_tokens(new, enc)
                if after < before:
                    changed += 1
                    saved += before - after
                else:
                    new = message
        if isinstance(message, dict):
            conversation.remember(message)
        result.append(new)
    if not changed:
        result = list(messages)
    return result, MessagesCompressionStats(
        level, enc, tokens_before, tokens_before - saved, changed, conversation.repeats
    )
