"""Masking a chat request's text with stable placeholders, and putting the values back.

``Masker`` replaces each value the recognizers find with ``[KIND_n]``: the same value
gets the same placeholder everywhere in one request, so the model can still tell two
e-mail addresses apart and refer back to one. ``restore`` maps placeholders in the
answer back to the values; a placeholder the request never produced (the model made it
up, or mangled it) is left as it is. ``StreamRestorer`` does the same over a stream
whose chunks may cut a placeholder in two.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from guardrails.recognizers import Finding, find_all

PLACEHOLDER = re.compile(r"\[([A-Z_]{2,20})_(\d{1,6})\]")
# The text fields of an answer message (or a stream delta) that are prose for the client:
# the answer, and the reasoning that OpenAI-compatible servers send beside it under
# either name. A placeholder the model repeats while reasoning is restored there too.
TEXT_FIELDS = ("content", "reasoning_content", "reasoning")
# The longest tail of a chunk that may still grow into a placeholder: held back.
_PARTIAL_TAIL = re.compile(r"\[(?:[A-Z_]{0,20}(?:_\d{0,6})?)?$")


class Masker:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}  # placeholder -> original value
        self._by_value: dict[tuple[str, str], str] = {}
        self._next: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # findings per kind, repeats included
        self._reserved: set[str] = set()

    def reserve_existing(self, text: str) -> None:
        """Placeholders the client itself wrote are never issued, so restoring the
        answer cannot turn the client's literal ``[EMAIL_1]`` into someone's address."""
        self._reserved.update(match.group() for match in PLACEHOLDER.finditer(text))

    def _placeholder(self, finding: Finding) -> str:
        key = (finding.kind, finding.value)
        existing = self._by_value.get(key)
        if existing:
            return existing
        while True:
            self._next[finding.kind] += 1
            placeholder = f"[{finding.kind}_{self._next[finding.kind]}]"
            if placeholder not in self._reserved:
                break
        self._by_value[key] = placeholder
        self.values[placeholder] = finding.value
        return placeholder

    def mask(self, text: str) -> str:
        findings = find_all(text)
        if not findings:
            return text
        pieces: list[str] = []
        position = 0
        for finding in findings:
            self.counts[finding.kind] += 1
            pieces.append(text[position : finding.start])
            pieces.append(self._placeholder(finding))
            position = finding.end
        pieces.append(text[position:])
        return "".join(pieces)


def restore(text: str, values: dict[str, str]) -> str:
    if not values or "[" not in text:
        return text
    return PLACEHOLDER.sub(lambda match: values.get(match.group(), match.group()), text)


def message_texts(body: dict):
    """(container, key) pairs of every text a chat request sends upstream: message
    contents, text parts, tool results and the arguments of earlier tool calls."""
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text"
        for tool_call in message.get("tool_calls") or ():
            function = tool_call.get("function") if isinstance(tool_call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                yield function, "arguments"


def _copy_messages(body: dict) -> dict:
    """A copy deep enough to edit any text ``message_texts`` yields: the client's body
    is never mutated (the contract of a stage)."""
    new = dict(body)
    messages = []
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            message = dict(message)
            if isinstance(message.get("content"), list):
                message["content"] = [
                    dict(part) if isinstance(part, dict) else part for part in message["content"]
                ]
            if isinstance(message.get("tool_calls"), list):
                message["tool_calls"] = [
                    {**call, "function": dict(call["function"])}
                    if isinstance(call, dict) and isinstance(call.get("function"), dict)
                    else call
                    for call in message["tool_calls"]
                ]
        messages.append(message)
    new["messages"] = messages
    return new


def scan_body(body: dict) -> Counter[str]:
    """Findings per kind in a request, for block mode (nothing is replaced)."""
    counts: Counter[str] = Counter()
    for container, key in message_texts(body):
        for finding in find_all(container[key]):
            counts[finding.kind] += 1
    return counts


def mask_body(body: dict, masker: Masker) -> dict:
    """A new body with every value masked; the client's ``body`` is unchanged."""
    for container, key in message_texts(body):
        masker.reserve_existing(container[key])
    new = _copy_messages(body)
    for container, key in message_texts(new):
        container[key] = masker.mask(container[key])
    return new


def restore_answer(body: dict, values: dict[str, str]) -> dict:
    """A chat.completion with placeholders in its text and tool calls restored."""
    if not values:
        return body
    new = dict(body)
    choices = []
    for choice in body.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            choice = {**choice, "message": _restore_message(message, values)}
        choices.append(choice)
    new["choices"] = choices
    return new


def _restore_message(message: dict, values: dict[str, str]) -> dict:
    message = dict(message)
    for name in TEXT_FIELDS:
        if isinstance(message.get(name), str):
            message[name] = restore(message[name], values)
    if isinstance(message.get("tool_calls"), list):
        calls = []
        for call in message["tool_calls"]:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                arguments = _restore_json_string(function["arguments"], values)
                call = {**call, "function": {**function, "arguments": arguments}}
            calls.append(call)
        message["tool_calls"] = calls
    return message


def _restore_json_string(arguments: str, values: dict[str, str]) -> str:
    # Arguments are JSON text: a restored value must be escaped as a JSON string's body
    # (a PEM key's newlines, a quote).
    return PLACEHOLDER.sub(
        lambda match: (
            json.dumps(values[match.group()])[1:-1] if match.group() in values else match.group()
        ),
        arguments,
    )


def _call_index(call) -> int:
    return call.get("index", 0) if isinstance(call, dict) else 0


class _Held:
    """One text field of a stream (a choice's content, a tool call's arguments)."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = ""

    def feed(self, text: str, values: dict[str, str]) -> str:
        text = self.held + text
        match = _PARTIAL_TAIL.search(text)
        if match:
            self.held = text[match.start() :]
            text = text[: match.start()]
        else:
            self.held = ""
        return restore(text, values)

    def flush(self, values: dict[str, str]) -> str:
        text, self.held = self.held, ""
        return restore(text, values)


class StreamRestorer:
    """The stream filter of mask mode: placeholders in ``delta.content``, in the
    reasoning beside it and in tool call arguments restored, a placeholder cut across
    chunks held until it is whole."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self._fields: dict[tuple, _Held] = {}
        self._template: dict | None = None
        self._json_fields: set[tuple] = set()

    def _field(self, key: tuple) -> _Held:
        held = self._fields.get(key)
        if held is None:
            held = self._fields[key] = _Held()
        return held

    def feed(self, chunk: dict) -> list[dict]:
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return [chunk]
        self._template = chunk
        new_choices = []
        for choice in choices:
            if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
                new_choices.append(choice)
                continue
            index = choice.get("index", 0)
            delta = dict(choice["delta"])
            for name in TEXT_FIELDS:
                if isinstance(delta.get(name), str):
                    delta[name] = self._field((index, name)).feed(delta[name], self.values)
            if isinstance(delta.get("tool_calls"), list):
                delta["tool_calls"] = [
                    self._feed_tool_call(index, call) for call in delta["tool_calls"]
                ]
            if choice.get("finish_reason"):
                # The choice ends: nothing more can complete what is held.
                for key, held in self._fields.items():
                    if key[0] == index and held.held:
                        self._add_tail(delta, key, held)
            new_choices.append({**choice, "delta": delta})
        return [{**chunk, "choices": new_choices}]

    def _add_tail(self, delta: dict, key: tuple, held: _Held) -> None:
        """What a field held back, restored and appended to this delta's piece of that
        field (tool arguments are JSON text: their values go in escaped)."""
        tail = held.flush({})
        if key[1] != "tool":
            delta[key[1]] = (delta.get(key[1]) or "") + restore(tail, self.values)
            return
        tail = _restore_json_string(tail, self.values)
        calls = delta.setdefault("tool_calls", [])
        for position, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if _call_index(call) == key[2] and isinstance(function, dict):
                arguments = function.get("arguments")
                arguments = (arguments if isinstance(arguments, str) else "") + tail
                calls[position] = {**call, "function": {**function, "arguments": arguments}}
                return
        calls.append({"index": key[2], "function": {"arguments": tail}})

    def _feed_tool_call(self, index: int, call: dict) -> dict:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
            return call
        held = self._field((index, "tool", call.get("index", 0)))
        arguments = held.feed(function["arguments"], {})
        arguments = _restore_json_string(arguments, self.values)
        return {**call, "function": {**function, "arguments": arguments}}

    def close(self) -> list[dict]:
        held_back = [(key, held) for key, held in self._fields.items() if held.held]
        if not held_back or self._template is None:
            return []
        choices = []
        for key, held in held_back:
            delta: dict = {}
            self._add_tail(delta, key, held)
            choices.append({"index": key[0], "delta": delta, "finish_reason": None})
        return [{**self._template, "choices": choices}]
