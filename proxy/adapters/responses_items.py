"""Responses API input items: kept per stored response, listed a page at a time, and
carried between the two paths (translated: chat messages; native: input items).

Pure functions, no I/O. A stored response keeps its conversation as chat messages
whichever path made it, so ``previous_response_id`` works across both; the native path
turns that conversation back into input items for the upstream.
"""

from __future__ import annotations

import json

from common.errors import InvalidRequest
from proxy.adapters.responses_answer import new_id
from proxy.adapters.responses_request import input_messages

LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
# The id prefix OpenAI gives each kind of item; any other kind gets "item".
ITEM_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def _message_content(role: str, content) -> list[dict]:
    if isinstance(content, list):
        return content
    text = content if isinstance(content, str) else ""
    if role == "assistant":
        return [{"type": "output_text", "text": text, "annotations": []}]
    return [{"type": "input_text", "text": text}]


def stored_input_items(value) -> list[dict]:
    """The request's ``input`` as the items ``GET .../input_items`` lists: each an object
    with an ``id`` and a ``status``, messages with a list of content parts."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    items = []
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        stored = {"type": kind, **item}
        if kind == "message":
            stored["content"] = _message_content(str(item.get("role")), item.get("content"))
        stored.setdefault("id", new_id(ITEM_PREFIXES.get(kind, "item")))
        stored.setdefault("status", "completed")
        items.append(stored)
    return items


def items_page(items: list[dict], *, limit, order, after) -> dict:
    """One page of ``items`` (stored oldest first) as OpenAI lists them: newest first by
    default, ``after`` the id of the last item of the previous page."""
    if limit in (None, ""):
        limit = LIST_LIMIT_DEFAULT
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        raise InvalidRequest("'limit' must be an integer.", param="limit") from None
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise InvalidRequest(f"'limit' must be between 1 and {LIST_LIMIT_MAX}.", param="limit")
    order = order or "desc"
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
    ordered = items if order == "asc" else list(reversed(items))
    if after:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise InvalidRequest(f"No input item with id '{after}'.", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }


# --- Between chat messages and input items ----------------------------------------------


def _user_part(part) -> dict:
    if isinstance(part, dict) and part.get("type") == "image_url":
        image = part.get("image_url") or {}
        converted = {"type": "input_image", "image_url": image.get("url")}
        if image.get("detail"):
            converted["detail"] = image["detail"]
        return converted
    text = part.get("text") if isinstance(part, dict) else part
    return {"type": "input_text", "text": text if isinstance(text, str) else ""}


def items_from_chat(messages: list[dict]) -> list[dict]:
    """A stored conversation (chat messages) as input items for a Responses upstream."""
    items: list[dict] = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id"),
                    "output": content if isinstance(content, str) else json.dumps(content),
                }
            )
            continue
        if role == "assistant":
            if content:
                items.append({"type": "message", "role": "assistant", "content": content})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": function.get("arguments") or "",
                    }
                )
            continue
        if isinstance(content, list):
            content = [_user_part(part) for part in content]
        items.append({"type": "message", "role": role, "content": content})
    return items


def _item_text(item: dict) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text") or part.get("refusal") or "")
            for part in content
            if isinstance(part, dict)
        )
    for name in ("arguments", "output"):
        if isinstance(item.get(name), str):
            return item[name]
    return json.dumps(item, ensure_ascii=False)


def chat_messages_lenient(value) -> list[dict]:
    """``input`` as chat messages: exactly when it translates, else by its text (items
    only a Responses upstream understands, such as files or built-in tool calls, are
    kept as their text, which is what the next turn and admission's count need)."""
    try:
        return input_messages(value)
    except InvalidRequest:
        pass
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages = []
    for item in value if isinstance(value, list) else ():
        if isinstance(item, dict):
            role = item.get("role") if item.get("role") in ("system", "assistant") else "user"
            messages.append({"role": role, "content": _item_text(item) or "-"})
    return messages


def openai_hosted_prompt(prompt) -> bool:
    """A reference to a prompt kept by OpenAI (its ids start ``pmpt_``), which only a
    route that passes the request through to OpenAI can use."""
    return isinstance(prompt, dict) and str(prompt.get("id") or "").startswith("pmpt_")


def estimate_chat_body(body: dict, history: list[dict]) -> dict:
    """A chat body with the text of a native Responses request, for admission to count
    (the request itself goes upstream untranslated)."""
    messages = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    for message in [*history, *chat_messages_lenient(body.get("input"))]:
        content = message.get("content")
        if not isinstance(content, str):
            content = _item_text({"content": content}) if content else ""
        if message.get("tool_calls"):
            content += json.dumps(message["tool_calls"], ensure_ascii=False)
        role = message.get("role") if message.get("role") in ("system", "assistant") else "user"
        messages.append({"role": role, "content": content or "-"})
    if body.get("tools"):
        messages.append(
            {"role": "system", "content": json.dumps(body["tools"], ensure_ascii=False)}
        )
    chat: dict = {"model": body["model"], "messages": messages}
    for name in ("user", "metadata"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("prompt") is not None and not openai_hosted_prompt(body["prompt"]):
        # The prompts stage sees it, and asks for the request to be translated.
        chat["prompt"] = body["prompt"]
    if isinstance(body.get("max_output_tokens"), int):
        chat["max_completion_tokens"] = body["max_output_tokens"]
    if body.get("stream"):
        chat["stream"] = True
    return chat
