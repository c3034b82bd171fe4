"""Rendering a prompt's messages and diffing two versions: plain functions, no ORM.

The template syntax is ``{{ name }}`` and nothing else: a placeholder is replaced by the
variable's text in one pass, so a value that itself holds ``{{ other }}`` stays as it is,
and no expression, filter or attribute access is ever evaluated (decision 0032).
"""

from __future__ import annotations

import difflib
import json
import re

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
ROLES = ("system", "developer", "user", "assistant")
MAX_MESSAGES = 100


class TemplateError(ValueError):
    """A template or its variables are wrong; ``param`` names the field to fix."""

    def __init__(self, message: str, *, param: str):
        super().__init__(message)
        self.param = param


def _texts(message: dict):
    """The message's text holders: (container, key) pairs whose value is a string."""
    content = message.get("content")
    if isinstance(content, str):
        yield message, "content"
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part, "text"


def check_messages(messages) -> list[dict]:
    """``messages`` if they are a template the library can store; TemplateError if not."""
    if not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES:
        raise TemplateError(
            f"messages must be a list of 1 to {MAX_MESSAGES} messages.", param="messages"
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise TemplateError(
                f"messages[{index}] needs a role among {', '.join(ROLES)}.", param="messages"
            )
        content = message.get("content")
        if not isinstance(content, str | list) or not content:
            raise TemplateError(
                f"messages[{index}] needs content (a string or a list of parts).",
                param="messages",
            )
    return messages


def variables_of(messages: list[dict]) -> list[str]:
    """The placeholders' names, in order of first appearance."""
    seen: dict[str, None] = {}
    for message in messages:
        for holder, key in _texts(message):
            for match in PLACEHOLDER.finditer(holder[key]):
                seen.setdefault(match.group(1), None)
    return list(seen)


def _text_of(value, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise TemplateError(
        f"Variable '{name}' must be a string, a number or a boolean.",
        param=f"prompt.variables.{name}",
    )


def render(messages: list[dict], variables: dict) -> list[dict]:
    """New messages with every placeholder replaced; the template is left as it was.

    A placeholder without a variable is an error naming it. A variable no placeholder uses
    is ignored: a label may move to a version that dropped it while clients still send it.
    """
    missing = [name for name in variables_of(messages) if name not in variables]
    if missing:
        raise TemplateError(
            f"Missing prompt variable(s): {', '.join(missing)}.",
            param=f"prompt.variables.{missing[0]}",
        )
    texts = {name: _text_of(value, name) for name, value in variables.items()}

    def substitute(text: str) -> str:
        return PLACEHOLDER.sub(lambda match: texts[match.group(1)], text)

    rendered = []
    for message in messages:
        copy = dict(message)
        content = message["content"]
        if isinstance(content, str):
            copy["content"] = substitute(content)
        else:
            copy["content"] = [
                {**part, "text": substitute(part["text"])}
                if isinstance(part, dict) and isinstance(part.get("text"), str)
                else part
                for part in content
            ]
        rendered.append(copy)
    return rendered


def version_text(*, messages: list[dict], model: str, parameters: dict) -> list[str]:
    """A version as lines of text, the form two versions are compared in."""
    lines = [f"model: {model or '(the request model)'}"]
    for key in sorted(parameters):
        lines.append(f"{key}: {json.dumps(parameters[key], sort_keys=True)}")
    for index, message in enumerate(messages):
        lines.append(f"--- message {index + 1} ({message.get('role')})")
        content = message.get("content")
        if isinstance(content, str):
            lines.extend(content.splitlines() or [""])
        else:
            for part in content or []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    lines.extend(part["text"].splitlines() or [""])
                else:
                    lines.append(json.dumps(part, sort_keys=True))
    return lines


def diff(old: list[str], new: list[str], *, old_name: str, new_name: str) -> list[str]:
    """A unified diff of two versions' texts (``version_text``), line by line."""
    return list(difflib.unified_diff(old, new, fromfile=old_name, tofile=new_name, lineterm=""))
